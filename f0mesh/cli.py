"""The f0mesh command line. Every flag also reads an F0MESH_* environment variable."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import signal
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from f0mesh.errors import F0MeshError

app = typer.Typer(add_completion=False, no_args_is_help=True, help="f0mesh: a WebRTC peer-to-peer mesh.")
err = Console(stderr=True)
out = Console()


def _opt(*names: str, env: str, help: str, **kwargs: Any) -> Any:
    return typer.Option(*names, envvar=f"F0MESH_{env}", help=help, **kwargs)


def _fail(message: str, code: int = 2) -> None:
    err.print(f"[bold red]error:[/] {message}", highlight=False)
    raise typer.Exit(code)


NodeUrl = Annotated[str, _opt("--node", env="NODE", help="URL of a running node")]
Token = Annotated[str | None, _opt("--admin-token", env="ADMIN_TOKEN", help="admin token of that node")]
DataDirOpt = Annotated[
    Path | None, _opt("--data-dir", env="DATA_DIR", help="read the token from DIR/admin.token")
]


@app.command()
def up(
    data_dir: Annotated[Path, _opt("--data-dir", env="DATA_DIR", help="identity, token and default store")],
    host: Annotated[str, _opt("--host", env="HOST", help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, _opt("--port", env="PORT", help="HTTP port")] = 8700,
    store: Annotated[
        str | None, _opt("--store", env="STORE", help="sqlite:///PATH or postgresql://...")
    ] = None,
    bootstrap: Annotated[
        list[str] | None, _opt("--bootstrap", env="BOOTSTRAP", help="peer URL to join")
    ] = None,
    public_url: Annotated[
        str | None, _opt("--public-url", env="PUBLIC_URL", help="URL other peers use")
    ] = None,
    admin_token: Annotated[str | None, _opt("--admin-token", env="ADMIN_TOKEN", help="admin token")] = None,
    session_lifetime: Annotated[
        float, _opt("--session-lifetime", env="SESSION_LIFETIME", help="dashboard login lasts this long (s)")
    ] = 12 * 3600.0,
    qos_interval: Annotated[
        float, _opt("--qos-interval", env="QOS_INTERVAL", help="seconds per QoS sample")
    ] = 15.0,
    probe_rate: Annotated[
        float, _opt("--probe-rate", env="PROBE_RATE", help="probes per second per link")
    ] = 1.0,
    gossip_interval: Annotated[
        float, _opt("--gossip-interval", env="GOSSIP_INTERVAL", help="seconds between telemetry pushes")
    ] = 120.0,
    ice_servers: Annotated[
        str | None, _opt("--ice-servers", env="ICE_SERVERS", help="iceServers JSON, or a file holding it")
    ] = None,
    ice_relay_only: Annotated[
        bool, _opt("--ice-relay-only", env="ICE_RELAY_ONLY", help="use only TURN relay candidates")
    ] = False,
    d_lo: Annotated[int, _opt("--d-lo", env="D_LO", help="dial more peers below this many links")] = 4,
    d: Annotated[int, _opt("--d", env="D", help="target number of links")] = 6,
    d_hi: Annotated[int, _opt("--d-hi", env="D_HI", help="prune links above this many")] = 12,
    dial_allow: Annotated[
        list[str] | None, _opt("--dial-allow", env="DIAL_ALLOW", help="CIDR this node may dial (repeatable)")
    ] = None,
    max_links: Annotated[int, _opt("--max-links", env="MAX_LINKS", help="most links this node holds")] = 64,
    heartbeat_timeout: Annotated[
        float, _opt("--heartbeat-timeout", env="HEARTBEAT_TIMEOUT", help="silence that fails a link (s)")
    ] = 4.0,
    location: Annotated[
        str | None, _opt("--location", env="LOCATION", help="lat,lon for the map view")
    ] = None,
    private_read: Annotated[
        bool,
        _opt("--private-read", env="PRIVATE_READ", help="read API, metrics and docs need the admin token"),
    ] = False,
    log_level: Annotated[
        str, _opt("--log-level", env="LOG_LEVEL", help="debug, info, warning, error")
    ] = "info",
    log_json: Annotated[
        bool, _opt("--log-json", env="LOG_JSON", help="one JSON object per log line")
    ] = False,
    tls_cert: Annotated[
        Path | None, _opt("--tls-cert", env="TLS_CERT", help="serve HTTPS with this certificate (PEM chain)")
    ] = None,
    tls_key: Annotated[
        Path | None, _opt("--tls-key", env="TLS_KEY", help="private key of --tls-cert (PEM)")
    ] = None,
    tls_ca: Annotated[
        Path | None,
        _opt(
            "--tls-ca", env="TLS_CA", help="verify HTTPS peers against this CA bundle (not the system store)"
        ),
    ] = None,
    tls_client_ca: Annotated[
        Path | None,
        _opt(
            "--tls-client-ca",
            env="TLS_CLIENT_CA",
            help="admin API and dashboard on --admin-port, for clients with a cert from this CA",
        ),
    ] = None,
    admin_port: Annotated[
        int | None, _opt("--admin-port", env="ADMIN_PORT", help="port of the mTLS admin listener")
    ] = None,
) -> None:
    """Run one peer: the WebRTC node with its HTTP worker, API and dashboard."""
    from f0mesh.config import NodeConfig, parse_ice_servers
    from f0mesh.data_dir import make_private
    from f0mesh.logs import setup_logging

    setup_logging(log_level, log_json)
    try:
        make_private(data_dir)
        config = NodeConfig(
            data_dir=data_dir,
            host=host,
            port=port,
            store_url=store,
            bootstrap=bootstrap or [],
            public_url=public_url,
            admin_token=admin_token,
            session_lifetime_s=session_lifetime,
            qos_interval=qos_interval,
            probe_rate=probe_rate,
            gossip_interval=gossip_interval,
            ice_servers=parse_ice_servers(ice_servers),
            dial_allow=dial_allow or [],
            ice_relay_only=ice_relay_only,
            d_lo=d_lo,
            d_target=d,
            d_hi=d_hi,
            max_links=max_links,
            heartbeat_timeout=heartbeat_timeout,
            heartbeat_interval=heartbeat_timeout / 4,  # three lost beats are not yet a failure
            location=location,
            open_read=not private_read,
            tls_cert=tls_cert,
            tls_key=tls_key,
            tls_ca=tls_ca,
            tls_client_ca=tls_client_ca,
            admin_port=admin_port,
        )
        asyncio.run(_serve(config, log_level))
    except F0MeshError as exc:
        _fail(exc.detail)
    except KeyboardInterrupt:
        pass


async def _serve(config: Any, log_level: str) -> None:
    """One node, served by one uvicorn server per listener (two with the mTLS admin port)."""
    import uvicorn

    from f0mesh.api.app import create_app
    from f0mesh.api.listeners import uvicorn_configs
    from f0mesh.node import Node

    class Server(uvicorn.Server):
        """Signals are handled once for all listeners below: uvicorn's own handling re-raises the
        signal after shutdown, and a second server would replace the first one's handler."""

        @contextlib.contextmanager
        def capture_signals(self):
            yield

    async def run(server: Server, servers: list[Server]) -> None:
        try:
            await server.serve()
        except SystemExit:
            pass  # uvicorn exits when it cannot bind; reported below from server.started
        finally:
            for other in servers:  # one listener down takes the node down: no half-served node
                other.should_exit = True

    node = Node(config)
    await node.start()
    loop = asyncio.get_running_loop()
    try:
        servers = [Server(c) for c in uvicorn_configs(create_app(node, manage_node=False), config, log_level)]
        # Modules, the app and the node live as long as the process: out of the cyclic collector's
        # sight, a full collection walks only what came later (~half a node's heap is imports).
        gc.freeze()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, lambda sig=sig: [s.handle_exit(sig, None) for s in servers])
        try:
            await asyncio.gather(*(run(s, servers) for s in servers))
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)
        for server in servers:
            if not server.started:
                raise F0MeshError(
                    f"could not listen on {server.config.host}:{server.config.port} (port in use?)"
                )
    finally:
        await node.stop()


@app.command("id")
def id_(data_dir: Annotated[Path, _opt("--data-dir", env="DATA_DIR", help="identity directory")]) -> None:
    """Print this node's PeerId (creates the identity if missing)."""
    from f0mesh.identity import Identity

    try:
        typer.echo(Identity.load_or_create(data_dir).peer_id)
    except F0MeshError as exc:
        _fail(exc.detail)


def _client(node: str, admin_token: str | None, data_dir: Path | None):
    from f0mesh.client import NodeClient, resolve_token

    return NodeClient(node, resolve_token(admin_token, data_dir))


@app.command()
def peers(
    node: NodeUrl = "http://127.0.0.1:8700",
    add: Annotated[str | None, typer.Option("--add", help="learn a peer from this URL")] = None,
    admin_token: Token = None,
    data_dir: DataDirOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """List the peers a node knows (or add one with --add URL)."""
    client = _client(node, admin_token, data_dir)
    try:
        if add:
            body = client.request("POST", "/api/peers", json={"url": add})
            rows = [body]
        else:
            rows = client.request("GET", "/api/peers")["peers"]
    except F0MeshError as exc:
        _fail(exc.detail)
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    table = Table("peer", "url", "trust", "last seen", "linked")
    for p in rows:
        trust = f"{p['trust']:.3f}" if p.get("trust") is not None else "-"
        table.add_row(
            p["peer_id"], p.get("url") or "-", trust, _ago(p.get("last_seen")), "yes" if p["linked"] else ""
        )
    out.print(table)


@app.command()
def dial(
    target: Annotated[str, typer.Argument(help="a peer's URL or PeerId")],
    node: NodeUrl = "http://127.0.0.1:8700",
    admin_token: Token = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Ask a node to link to a peer; prints the link once both channels are open."""
    body = {"url": target} if "://" in target else {"peer_id": target}
    try:
        link = _client(node, admin_token, data_dir).request("POST", "/dial", json=body)
    except F0MeshError as exc:
        _fail(exc.detail)
    setup = f" in {link['setup_ms']:.0f} ms" if link.get("setup_ms") else ""
    out.print(f"link {link['link_id']} to {link['peer_id']} is {link['state']}{setup}")


@app.command()
def publish(
    topic: Annotated[str, typer.Argument(help="gossip topic")],
    payload: Annotated[str, typer.Argument(help="JSON value (a bare word is sent as a string)")],
    node: NodeUrl = "http://127.0.0.1:8700",
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
    try:
        body = _client(node, admin_token, data_dir).request(
            "POST", "/api/gossip", json={"topic": topic, "payload": value}
        )
    except F0MeshError as exc:
        _fail(exc.detail)
    out.print(f"published {body['id']}")


@app.command()
def links(
    node: NodeUrl = "http://127.0.0.1:8700",
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Show a node's links with their QoS."""
    try:
        rows = _client(node, None, None).request("GET", "/api/mesh-rtc/links")["links"]
    except F0MeshError as exc:
        _fail(exc.detail)
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    out.print(links_table(rows))


def links_table(rows: list[dict[str, Any]]) -> Table:
    colours = {"good": "green", "degraded": "yellow", "bad": "red"}
    table = Table("link", "peer", "state", "health", "rtt ms", "jitter ms", "loss %", "kbps", "updated")
    for r in rows:
        health = r.get("health") or "unknown"
        table.add_row(
            r["link_id"],
            r["peer_id"][:16] + "…",
            r["state"],
            f"[{colours.get(health, 'dim')}]{health}[/]",
            _num(r.get("rtt_ms")),
            _num(r.get("jitter_ms")),
            _num(r.get("loss_pct")),
            _num(r.get("bitrate_kbps")),
            _ago(r.get("updated_at")),
        )
    return table


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _ago(ts: float | None) -> str:
    import time

    if not ts:
        return "-"
    return f"{max(0.0, time.time() - ts):.0f} s ago"


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
            console=err if as_json else out,
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
    fanout: Annotated[int, _opt("--fanout", env="SIM_FANOUT", help="gossip push fanout", min=1, max=64)] = 3,
    seed: Annotated[int, _opt("--seed", env="SIM_SEED", help="the same seed repeats a run exactly")] = 1,
    experiment: Annotated[
        str | None,
        _opt("--experiment", env="SIM_EXPERIMENT", help="broadcast, sybil, fanout, crdt or suite"),
    ] = None,
    ttl: Annotated[int, _opt("--ttl", env="SIM_TTL", help="gossip hop limit", min=1, max=255)] = 8,
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
    from f0mesh.sim.experiments import figures, report
    from f0mesh.sim.experiments import simulate as run_simulation

    try:
        results = run_simulation(
            experiment,
            peers=peers,
            loss=loss,
            sybils=sybils,
            fanout=fanout,
            ttl=ttl,
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
        err.print(f"following {node.rstrip('/')}{path}", soft_wrap=True)

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
                err.print(
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
                err.print(f"missed {item.data.get('dropped')} events: too slow")
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
    app(prog_name="f0mesh")


if __name__ == "__main__":
    sys.exit(main())
