"""The f0mesh command line. Every flag also reads an F0MESH_* environment variable."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, NoReturn, TypeVar

import typer
from typer.core import TyperGroup

from f0mesh import __version__
from f0mesh.console import err, out
from f0mesh.console import error_line as _error_line
from f0mesh.errors import F0MeshError
from f0mesh.flags import BY_PARAM as _UP_FLAGS
from f0mesh.peer_record import parse_tag

if TYPE_CHECKING:
    from types import ModuleType

    from rich.table import Table

T = TypeVar("T")
DEFAULT_NODE = "http://127.0.0.1:8700"
LogLevel = Literal["debug", "info", "warning", "error"]
FRESH_INTERPRETER = "fresh-interpreter"  # main()'s context object: ``up`` serves in a new interpreter


class OneLineErrors(TyperGroup):
    """A usage error is one line with the next step, like every other operator error (typer's own
    report is a usage block and a framed panel). A bare ``f0mesh`` still gets the help."""

    def main(self, args: Any = None, *rest: Any, standalone_mode: bool = True, **kwargs: Any) -> Any:
        argv = sys.argv[1:] if args is None else list(args)
        if not standalone_mode or not argv:
            return super().main(args, *rest, standalone_mode=standalone_mode, **kwargs)
        try:
            code = super().main(argv, *rest, standalone_mode=False, **kwargs)
        except typer.TyperException as exc:
            ctx = getattr(exc, "ctx", None)
            where = f" (see {ctx.command_path} --help)" if ctx is not None else ""
            # pydantic's prefix on a choice that does not match says nothing to an operator
            _error_line(f"{exc.format_message().replace('Value error, ', '')}{where}")
            sys.exit(exc.exit_code)
        except typer.Abort:
            _error_line("aborted")
            sys.exit(1)
        sys.exit(code if isinstance(code, int) else 0)


app = typer.Typer(
    cls=OneLineErrors, add_completion=False, no_args_is_help=True, help="f0mesh: a WebRTC peer-to-peer mesh."
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"f0mesh {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool,
        typer.Option("--version", "-V", callback=_version, is_eager=True, help="print the version and exit"),
    ] = False,
) -> None:
    """f0mesh: a WebRTC peer-to-peer mesh."""


def _opt(*names: str, env: str, help: str, **kwargs: Any) -> Any:
    return typer.Option(*names, envvar=f"F0MESH_{env}", help=help, **kwargs)


def _tags(values: list[str]) -> dict[str, str]:
    """``--tag key=value`` (repeatable); a bad one is a usage error, as typer's own."""
    tags: dict[str, str] = {}
    for value in values:
        try:
            key, text = parse_tag(value)
        except ValueError as exc:
            _fail(f"--tag: {exc}")
        tags[key] = text
    return tags


def _fail(message: str, code: int = 2) -> NoReturn:
    _error_line(message)
    raise typer.Exit(code)


NodeUrl = Annotated[str, _opt("--node", env="NODE", help="URL of a running node (http:// if none given)")]
Token = Annotated[str | None, _opt("--admin-token", env="ADMIN_TOKEN", help="admin token of that node")]
DataDirOpt = Annotated[
    Path | None, _opt("--data-dir", env="DATA_DIR", help="read the token from DIR/admin.token")
]


def _default(param: str) -> Any:
    return _UP_FLAGS[param].default


def _up_opt(param: str, **kwargs: Any) -> Any:
    """``f0mesh up``'s option for a flag of f0mesh/flags.py: its name, variable and help from there."""
    flag = _UP_FLAGS[param]
    return typer.Option(flag.name, envvar=flag.env, help=flag.help, **kwargs)


@app.command()
def up(
    ctx: typer.Context,
    data_dir: Annotated[Path, _up_opt("data_dir")],
    profile: Annotated[str | None, _up_opt("profile")] = _default("profile"),
    host: Annotated[str, _up_opt("host")] = _default("host"),
    port: Annotated[int, _up_opt("port")] = _default("port"),
    store: Annotated[str | None, _up_opt("store")] = _default("store"),
    bootstrap: Annotated[list[str] | None, _up_opt("bootstrap")] = _default("bootstrap"),
    public_url: Annotated[str | None, _up_opt("public_url")] = _default("public_url"),
    no_public_url: Annotated[bool, _up_opt("no_public_url")] = _default("no_public_url"),
    admin_token: Annotated[str | None, _up_opt("admin_token")] = _default("admin_token"),
    session_lifetime: Annotated[float, _up_opt("session_lifetime")] = _default("session_lifetime"),
    qos_interval: Annotated[float, _up_opt("qos_interval")] = _default("qos_interval"),
    probe_rate: Annotated[float, _up_opt("probe_rate")] = _default("probe_rate"),
    gossip_interval: Annotated[float, _up_opt("gossip_interval")] = _default("gossip_interval"),
    peer_refresh: Annotated[float, _up_opt("peer_refresh")] = _default("peer_refresh"),
    ice_servers: Annotated[str | None, _up_opt("ice_servers")] = _default("ice_servers"),
    ice_relay_only: Annotated[bool, _up_opt("ice_relay_only")] = _default("ice_relay_only"),
    d_lo: Annotated[int, _up_opt("d_lo")] = _default("d_lo"),
    d: Annotated[int, _up_opt("d")] = _default("d"),
    d_hi: Annotated[int, _up_opt("d_hi")] = _default("d_hi"),
    dial_allow: Annotated[list[str] | None, _up_opt("dial_allow")] = _default("dial_allow"),
    cors_origin: Annotated[list[str] | None, _up_opt("cors_origin")] = _default("cors_origin"),
    state_writers: Annotated[list[str] | None, _up_opt("state_writers")] = _default("state_writers"),
    max_links: Annotated[int, _up_opt("max_links")] = _default("max_links"),
    heartbeat_timeout: Annotated[float, _up_opt("heartbeat_timeout")] = _default("heartbeat_timeout"),
    connect_timeout: Annotated[float, _up_opt("connect_timeout")] = _default("connect_timeout"),
    location: Annotated[str | None, _up_opt("location")] = _default("location"),
    tag: Annotated[list[str] | None, _up_opt("tag")] = _default("tag"),
    name: Annotated[str | None, _up_opt("name")] = _default("name"),
    private_read: Annotated[bool, _up_opt("private_read")] = _default("private_read"),
    log_level: Annotated[LogLevel, _up_opt("log_level", case_sensitive=False)] = _default("log_level"),
    log_json: Annotated[bool, _up_opt("log_json")] = _default("log_json"),
    tls_cert: Annotated[Path | None, _up_opt("tls_cert")] = _default("tls_cert"),
    tls_key: Annotated[Path | None, _up_opt("tls_key")] = _default("tls_key"),
    tls_ca: Annotated[Path | None, _up_opt("tls_ca")] = _default("tls_ca"),
    tls_client_ca: Annotated[Path | None, _up_opt("tls_client_ca")] = _default("tls_client_ca"),
    admin_port: Annotated[int | None, _up_opt("admin_port")] = _default("admin_port"),
    http_header_timeout: Annotated[float, _up_opt("http_header_timeout")] = _default("http_header_timeout"),
    http_max_pending: Annotated[int, _up_opt("http_max_pending")] = _default("http_max_pending"),
    gossip_d: Annotated[int, _up_opt("gossip_d")] = _default("gossip_d"),
    gossip_d_lo: Annotated[int, _up_opt("gossip_d_lo")] = _default("gossip_d_lo"),
    gossip_d_hi: Annotated[int, _up_opt("gossip_d_hi")] = _default("gossip_d_hi"),
    gossip_ttl: Annotated[int, _up_opt("gossip_ttl")] = _default("gossip_ttl"),
    gossip_heartbeat: Annotated[float, _up_opt("gossip_heartbeat")] = _default("gossip_heartbeat"),
    topic: Annotated[list[str] | None, _up_opt("topic")] = _default("topic"),
    gossip_threshold: Annotated[float, _up_opt("gossip_threshold")] = _default("gossip_threshold"),
    gossip_publish_threshold: Annotated[float, _up_opt("gossip_publish_threshold")] = _default(
        "gossip_publish_threshold"
    ),
    gossip_graylist: Annotated[float, _up_opt("gossip_graylist")] = _default("gossip_graylist"),
    pex_min_trust: Annotated[float, _up_opt("pex_min_trust")] = _default("pex_min_trust"),
    peer_store_max: Annotated[int, _up_opt("peer_store_max")] = _default("peer_store_max"),
    dial_rate: Annotated[float, _up_opt("dial_rate")] = _default("dial_rate"),
    gc_interval: Annotated[float, _up_opt("gc_interval")] = _default("gc_interval"),
    stranger_retention: Annotated[float, _up_opt("stranger_retention")] = _default("stranger_retention"),
) -> None:
    """Run one peer: the WebRTC node with its HTTP worker, API and dashboard."""
    from f0mesh import serve
    from f0mesh.flags import node_config
    from f0mesh.logs import setup_logging

    setup_logging(log_level, log_json)
    # typer vendors click: its ParameterSource is not click's, so the source is read by name
    given = {
        flag.name: ctx.params[param]
        for param, flag in _UP_FLAGS.items()
        if flag.path
        and param != "data_dir"
        and getattr(ctx.get_parameter_source(param), "name", "") in ("COMMANDLINE", "ENVIRONMENT")
    }
    try:
        config = node_config(data_dir, given, profile)
        if ctx.obj is FRESH_INTERPRETER:
            serve.run_in_fresh_interpreter(config, log_level, log_json)
        else:
            serve.run(config, log_level)
    except F0MeshError as exc:
        _fail(exc.detail)
    except KeyboardInterrupt:
        pass


@app.command("id")
def id_(data_dir: Annotated[Path, _opt("--data-dir", env="DATA_DIR", help="identity directory")]) -> None:
    """Print this node's PeerId (creates the identity if missing)."""
    from f0mesh.datadir import prepare
    from f0mesh.identity import Identity

    try:
        typer.echo(Identity.load_or_create(prepare(data_dir, writable=False)).peer_id)
    except F0MeshError as exc:
        _fail(exc.detail)


Wide = Annotated[bool, typer.Option("--wide", help="full PeerIds and every column (wider than 80)")]
AsJson = Annotated[bool, typer.Option("--json", help="print JSON for scripts")]


def _call(
    node: str, admin_token: str | None, data_dir: Path | None, action: Callable[[Any], Awaitable[T]]
) -> T:
    """Run one conversation with a node; any failure is one line and exit code 2."""
    from f0mesh.client import NodeClient, resolve_token

    async def converse() -> T:
        async with NodeClient(node, resolve_token(admin_token, data_dir)) as client:
            return await action(client)

    try:
        return asyncio.run(converse())
    except F0MeshError as exc:
        _fail(exc.detail)


def _print(value: Any, as_json: bool, table: Callable[[ModuleType], Table], wide: bool = False) -> None:
    """``table`` builds the table from f0mesh.tables, imported only when one is printed."""
    if as_json:
        typer.echo(json.dumps(value, indent=2))
    else:
        from f0mesh import tables

        tables.show(out(), table(tables), wide)


async def _peer_id(client: Any, given: str) -> str:
    """A full PeerId, or the tail the tables show (``…Xy3kP9ab``) if exactly one known peer ends so."""
    from f0mesh.client import ClientError
    from f0mesh.identity import is_peer_id

    if is_peer_id(given):
        return given
    tail = given.lstrip("…").lstrip(".")
    if not (4 <= len(tail) <= 60 and tail.isalnum()):
        raise ClientError(
            f"{given!r} is not a PeerId: give the full id (f0mesh peers --wide) or the tail the tables "
            "show, e.g. …Xy3kP9ab"
        )
    known = {p["peer_id"] for p in await client.peers()} | {link["peer_id"] for link in await client.links()}
    matches = sorted(p for p in known if p.endswith(tail))
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise ClientError(f"no peer known to {client.base_url} ends with {tail}: see f0mesh peers")
    raise ClientError(f"{len(matches)} peers end with {tail}: give more of the id, or all of it (--wide)")


@app.command()
def peers(
    node: NodeUrl = DEFAULT_NODE,
    add: Annotated[str | None, typer.Option("--add", help="learn a peer from this URL")] = None,
    admin_token: Token = None,
    data_dir: DataDirOpt = None,
    wide: Wide = False,
    as_json: AsJson = False,
) -> None:
    """List the peers a node knows (or add one with --add URL)."""

    async def action(client: Any) -> list[dict[str, Any]]:
        return [await client.add_peer(add)] if add else await client.peers()

    rows = _call(node, admin_token, data_dir, action)
    _print(rows, as_json, lambda tables: tables.peers_table(rows, wide), wide)


@app.command()
def dial(
    target: Annotated[str, typer.Argument(help="a peer's URL (http://HOST:PORT) or PeerId")],
    node: NodeUrl = DEFAULT_NODE,
    admin_token: Token = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Ask a node to link to a peer; prints the link once both channels are open."""
    from f0mesh.client import ClientError

    async def action(client: Any) -> dict[str, Any]:
        if "://" in target:
            return await client.dial(url=target)
        if ":" in target and not target.startswith("…"):
            raise ClientError(f"{target} looks like an address: write http://{target}")
        try:
            peer_id = await _peer_id(client, target)
        except ClientError as exc:
            raise ClientError(f"{target!r} is neither a URL (http://HOST:PORT) nor a known PeerId") from exc
        return await client.dial(peer_id=peer_id)

    link = _call(node, admin_token, data_dir, action)
    setup = f" in {link['setup_ms']:.0f} ms" if link.get("setup_ms") else ""
    out().print(f"link {link['link_id']} to {link['peer_id']} is {link['state']}{setup}", soft_wrap=True)


@app.command()
def publish(
    topic: Annotated[str, typer.Argument(help="gossip topic")],
    payload: Annotated[str, typer.Argument(help="JSON value (a bare word is sent as a string)")],
    node: NodeUrl = DEFAULT_NODE,
    admin_token: Token = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Sign and spread a message through the mesh from a node; a payload of - is read from stdin."""
    if payload == "-":
        payload = sys.stdin.read().rstrip("\n")
    try:
        value = json.loads(payload)
    except json.JSONDecodeError:
        value = payload
    message_id = _call(node, admin_token, data_dir, lambda client: client.publish(topic, value))
    out().print(f"published {message_id}", soft_wrap=True)


@app.command()
def links(
    node: NodeUrl = DEFAULT_NODE,
    admin_token: Token = None,
    data_dir: DataDirOpt = None,
    wide: Wide = False,
    as_json: AsJson = False,
) -> None:
    """Show a node's links with their QoS."""
    rows = _call(node, admin_token, data_dir, lambda client: client.links())
    _print(rows, as_json, lambda tables: tables.links_table(rows, wide), wide)


@app.command()
def messages(
    topic: Annotated[str | None, typer.Option("--topic", help="only this topic")] = None,
    limit: Annotated[int, typer.Option("--limit", help="newest N messages", min=1, max=10000)] = 20,
    node: NodeUrl = DEFAULT_NODE,
    admin_token: Token = None,
    data_dir: DataDirOpt = None,
    wide: Wide = False,
    as_json: AsJson = False,
) -> None:
    """Show the gossip messages a node has received, newest first."""
    rows = _call(node, admin_token, data_dir, lambda client: client.messages(topic, limit))
    _print(rows, as_json, lambda tables: tables.messages_table(rows, wide), wide)


@app.command()
def state(
    name: Annotated[str | None, typer.Argument(help="a document's name; none lists the documents")] = None,
    node: NodeUrl = DEFAULT_NODE,
    admin_token: Token = None,
    data_dir: DataDirOpt = None,
    as_json: AsJson = False,
) -> None:
    """List the replicated documents, or print one document's value as JSON."""
    if name is None:
        body = _call(node, admin_token, data_dir, lambda client: client.documents())
        _print(body, as_json, lambda tables: tables.documents_table(body["documents"]))
        return
    view = _call(node, admin_token, data_dir, lambda client: client.document(name))
    typer.echo(json.dumps(view if as_json else view["value"], indent=2, ensure_ascii=False))


@app.command()
def trust(
    peer: Annotated[str | None, typer.Argument(help="PeerId (or its tail) to give an opinion of")] = None,
    weight: Annotated[
        float | None, typer.Argument(help="this node's trust in that peer, 0 (none) to 1", min=0.0, max=1.0)
    ] = None,
    node: NodeUrl = DEFAULT_NODE,
    admin_token: Token = None,
    data_dir: DataDirOpt = None,
    wide: Wide = False,
    as_json: AsJson = False,
) -> None:
    """Show trust scores and this node's own edges; `trust PEER WEIGHT` sets its opinion of a peer.

    An edge is the opinion adjusted by what the peer did (good deliveries add a little, faults take
    it down), which is why it may differ from the opinion set."""
    if peer is not None and weight is None:
        _fail(f"give a weight from 0 to 1 after the peer, e.g. f0mesh trust {peer} 0.8")

    async def action(client: Any) -> dict[str, Any]:
        if peer is not None and weight is not None:
            return await client.set_trust(await _peer_id(client, peer), weight)
        own = (await client.health())["peer_id"]
        body = await client.trust()
        body["own_edges"] = {e["to"]: e["weight"] for e in body.get("edges", []) if e.get("from") == own}
        return body

    body = _call(node, admin_token, data_dir, action)
    if as_json:
        typer.echo(json.dumps(body, indent=2))
    elif peer is not None:
        out().print(
            f"opinion of {body['peer_id']} set to {body['weight']:g}; its score is {body['score']:.4f}",
            soft_wrap=True,
        )
    else:
        from f0mesh import tables

        tables.show(out(), tables.trust_table(body["scores"], body["own_edges"], wide), wide)


@app.command()
def block(
    peer: Annotated[str, typer.Argument(help="PeerId (or the tail the tables show)")],
    undo: Annotated[bool, typer.Option("--undo", help="lift the block instead")] = False,
    node: NodeUrl = DEFAULT_NODE,
    admin_token: Token = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Refuse a peer everywhere (offers, dials, peer exchange, gossip) and close its link."""

    async def action(client: Any) -> dict[str, Any]:
        peer_id = await _peer_id(client, peer)
        return await (client.unblock(peer_id) if undo else client.block(peer_id))

    body = _call(node, admin_token, data_dir, action)
    out().print(
        f"{body['peer_id']} is {'blocked' if body['blocked'] else 'no longer blocked'}", soft_wrap=True
    )


@app.command()
def close(
    peer: Annotated[str, typer.Argument(help="PeerId (or the tail the tables show)")],
    node: NodeUrl = DEFAULT_NODE,
    admin_token: Token = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Close the link to a peer; the node does not redial it until it is dialled again."""

    async def action(client: Any) -> dict[str, Any]:
        return await client.close_link(await _peer_id(client, peer))

    body = _call(node, admin_token, data_dir, action)
    out().print(f"closed the link to {body['peer_id']}", soft_wrap=True)


@app.command()
def demo(
    peers: Annotated[int, _opt("--peers", env="DEMO_PEERS", help="how many nodes", min=2, max=64)] = 8,
    base_port: Annotated[
        int, _opt("--base-port", env="DEMO_BASE_PORT", help="port of the first node")
    ] = 8700,
    duration: Annotated[
        float | None, _opt("--duration", env="DEMO_DURATION", help="stop after this many seconds")
    ] = None,
    data_dir: Annotated[
        Path | None, _opt("--data-dir", env="DATA_DIR", help="where the nodes keep state")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="end with one JSON summary")] = False,
) -> None:
    """Run a whole mesh on this machine: N node processes that link up; Ctrl-C stops them all."""
    from f0mesh.demo import run_demo

    try:
        summary = run_demo(
            peers=peers,
            base_port=base_port,
            duration=duration,
            data_dir=data_dir,
            console=err() if as_json else out(),
        )
    except F0MeshError as exc:
        _fail(exc.detail)
    if as_json:
        typer.echo(json.dumps(summary))
    if not summary.get("ok", False):
        raise typer.Exit(1)


@app.command()
def simulate(
    peers: Annotated[int, _opt("--peers", env="SIM_PEERS", help="simulated peers", min=2, max=10**5)] = 1000,
    loss: Annotated[
        float, _opt("--loss", env="SIM_LOSS", help="share of messages lost (0.1 = 10 %)", min=0.0, max=0.99)
    ] = 0.0,
    sybils: Annotated[
        float, _opt("--sybils", env="SIM_SYBILS", help="share of peers that are Sybils", min=0.0, max=0.9)
    ] = 0.0,
    fanout: Annotated[
        int | None,
        _opt("--fanout", env="SIM_FANOUT", help="push degree D (default: the engine's)", min=1, max=64),
    ] = None,
    seed: Annotated[int, _opt("--seed", env="SIM_SEED", help="the same seed repeats a run exactly")] = 1,
    experiment: Annotated[
        str | None,
        _opt("--experiment", env="SIM_EXPERIMENT", help="broadcast, sybil, eclipse, fanout, crdt or suite"),
    ] = None,
    ttl: Annotated[
        int | None,
        _opt("--ttl", env="SIM_TTL", help="gossip hop limit (default: the engine's)", min=1, max=255),
    ] = None,
    messages: Annotated[
        int, _opt("--messages", env="SIM_MESSAGES", help="messages followed per run", min=1, max=100)
    ] = 3,
    churn: Annotated[
        float, _opt("--churn", env="SIM_CHURN", help="share of peers leaving per minute", min=0.0, max=1.0)
    ] = 0.0,
    out_dir: Annotated[
        Path | None, _opt("--out", env="SIM_OUT", help="write the JSON results and PNG plots here")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the figures as JSON")] = False,
) -> None:
    """Run the real gossip engine on a simulated mesh of up to 10,000+ peers, in virtual time."""
    from f0mesh.gossip import GossipParams
    from f0mesh.sim.experiments import figures, report
    from f0mesh.sim.experiments import simulate as run_simulation

    defaults = GossipParams()
    try:
        results = run_simulation(
            experiment,
            peers=peers,
            loss=loss,
            sybils=sybils,
            fanout=defaults.d if fanout is None else fanout,
            ttl=defaults.ttl if ttl is None else ttl,
            seed=seed,
            messages=messages,
            churn=churn,
            out=out_dir,
            progress=lambda line: typer.echo(line, err=True),
        )
    except ValueError as exc:
        _fail(str(exc))
    typer.echo(json.dumps(figures(results)) if as_json else report(results))


# -- building on f0mesh: following a topic and the node's events ----------------------------


def _follow(node: str, admin_token: str | None, data_dir: Path | None, path: str, params: dict[str, Any]):
    """The stream's events; stderr says when it is (re)connected, stdout carries only the events."""
    from f0mesh.client import resolve_token
    from f0mesh.sse_reader import EventReader

    def opened() -> None:
        err().print(f"following {node.rstrip('/')}{path}", soft_wrap=True)

    return EventReader(node, resolve_token(admin_token, data_dir), path, params, on_open=opened)


@app.command()
def subscribe(
    topic: Annotated[str, typer.Argument(help="gossip topic")],
    node: NodeUrl = "http://127.0.0.1:8700",
    admin_token: Token = None,
    data_dir: DataDirOpt = None,
    since: Annotated[
        int | None, typer.Option("--since", help="first replay the stored messages after this id")
    ] = None,
    count: Annotated[int | None, typer.Option("--count", min=1, help="exit after this many messages")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON object per line")] = False,
) -> None:
    """Print a topic's messages as they arrive; after a dropped connection it resumes where it was."""
    params: dict[str, Any] = {"topic": topic} if since is None else {"topic": topic, "since": since}
    seen = 0
    try:
        for item in _follow(node, admin_token, data_dir, "/api/gossip/subscribe", params):
            if item.event == "dropped":
                d = item.data
                err().print(
                    f"missed {d['dropped']} messages (ids {d['after']}..{d['upto']}): too slow; "
                    f"f0mesh subscribe {topic} --since {d['after']} replays them"
                )
            elif item.event == "message":
                m = item.data
                if as_json:
                    typer.echo(json.dumps(m, separators=(",", ":")))
                else:
                    body = json.dumps(m["payload"]) if "payload" in m else f"b64:{m['payload_b64']}"
                    typer.echo(f"{m['n']} {m['origin'][:16]} {body}")
                seen += 1
                if count is not None and seen >= count:
                    return
    except F0MeshError as exc:
        _fail(exc.detail)
    except KeyboardInterrupt:
        raise typer.Exit(130) from None


@app.command()
def query(
    name: Annotated[str, typer.Argument(help="the query's name, e.g. f0mesh.ping")],
    payload: Annotated[str, typer.Argument(help="JSON value (a bare word is sent as a string)")] = "null",
    peer: Annotated[
        list[str] | None, typer.Option("--peer", help="ask only this PeerId (repeatable)")
    ] = None,
    tag: Annotated[
        list[str] | None, typer.Option("--tag", help="ask only peers with key=value (repeatable)")
    ] = None,
    timeout: Annotated[
        float, typer.Option("--timeout", min=0.1, max=30, help="seconds to gather answers")
    ] = 5.0,
    node: NodeUrl = DEFAULT_NODE,
    admin_token: Token = None,
    data_dir: DataDirOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="the whole result as JSON")] = False,
) -> None:
    """Ask the peers matching --peer/--tag (default: every peer known) and print their answers."""
    value = _json_or_word(payload)
    tags = _tags(tag or []) or None
    result = _call(
        node,
        admin_token,
        data_dir,
        lambda c: c.query(name, value, peers=peer or None, tags=tags, timeout=timeout),
    )
    if as_json:
        typer.echo(json.dumps(result, separators=(",", ":")))
        return
    for answer in result["answers"]:
        body = answer.get("answer", answer.get("answer_b64"))
        typer.echo(f"{answer['peer_id']} {json.dumps(body)}")
    for error in result["errors"]:
        typer.echo(f"{error['peer_id']} error: {error['error']}")
    missing = result["no_answer"]
    err().print(f"{len(result['answers'])} of {len(result['targets'])} answered; no answer: {len(missing)}")
    for peer_id in missing:
        err().print(f"  {peer_id}", soft_wrap=True)


@app.command()
def direct(
    peer_id: Annotated[str, typer.Argument(help="the addressee's PeerId")],
    payload: Annotated[
        str, typer.Argument(help="JSON value (a bare word is sent as a string); - reads stdin")
    ],
    node: NodeUrl = DEFAULT_NODE,
    admin_token: Token = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Send one message to one peer, encrypted to it; it sees it on /api/events?topic=direct."""
    if payload == "-":
        payload = sys.stdin.read().rstrip("\n")
    message_id = _call(node, admin_token, data_dir, lambda c: c.send_direct(peer_id, _json_or_word(payload)))
    out().print(f"sent {message_id}", soft_wrap=True)


def _json_or_word(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


@app.command()
def monitor(
    node: NodeUrl = "http://127.0.0.1:8700",
    admin_token: Token = None,
    data_dir: DataDirOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON object per line")] = False,
) -> None:
    """Print link and membership events (joined, left, failed, updated) as they happen."""
    import time

    try:
        for item in _follow(node, admin_token, data_dir, "/api/events", {}):
            if item.event == "dropped":
                err().print(f"missed {item.data.get('dropped')} events: too slow")
            elif item.event in ("link", "member"):
                if as_json:
                    typer.echo(json.dumps(item.data, separators=(",", ":"), default=str))
                    continue
                d = item.data["data"]
                what = d.get("event") or d.get("state")
                reason = f" ({d['reason']})" if d.get("reason") else ""
                typer.echo(f"{time.strftime('%H:%M:%S')} {item.event} {what} {d.get('peer_id')}{reason}")
    except F0MeshError as exc:
        _fail(exc.detail)
    except KeyboardInterrupt:
        raise typer.Exit(130) from None


def main() -> None:
    """The installed ``f0mesh`` and ``python -m f0mesh``: here ``up`` hands its node to a fresh
    interpreter (serve.run_in_fresh_interpreter); ``app`` called in a process of one's own serves in it."""
    app(prog_name="f0mesh", obj=FRESH_INTERPRETER)


if __name__ == "__main__":
    sys.exit(main())
