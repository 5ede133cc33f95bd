"""The flags of ``f0mesh up``: each names the NodeConfig value it sets, its F0MESH_* variable and its
help, once. The CLI takes its defaults from here (that is, from the dataclasses), the launcher
renders a command line from here, and the README's table is generated from here.

A flag's ``path`` is a NodeConfig field, or ``layer.field`` inside a composed params dataclass
(``gossip.d`` is GossipParams.d). Flags with no path (``--log-level``) belong to the process, not
the node.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from f0mesh.config import NodeConfig, parse_ice_servers
from f0mesh.errors import ConfigError
from f0mesh.peer_record import parse_tag
from f0mesh.profiles import PROFILES

ENV_PREFIX = "F0MESH_"


def _listed(value: Sequence[str] | None) -> list[str]:
    return list(value or [])


def _comma_listed(value: Sequence[str] | None) -> list[str]:
    return [item for entry in value or [] for item in entry.split(",") if item]


def _tags(value: Sequence[str] | None) -> dict[str, str]:
    try:
        return dict(parse_tag(text) for text in value or [])
    except ValueError as exc:
        raise ConfigError(f"--tag: {exc}") from exc


def _negated(value: bool) -> bool:
    return not value


@dataclass(frozen=True)
class Flag:
    name: str  # "--gossip-d"
    path: str | None  # "gossip.d"; None: a setting of the process, not of the node
    help: str
    metavar: str = ""  # the README's placeholder for the value: "S", "URL"
    note: str = ""  # what the README says beyond the help line
    # the CLI's value -> the config's; such flags default to None (or False) on the command line
    convert: Callable[[Any], Any] | None = None
    process_default: Any = None  # a process setting's default
    shown: str = ""  # the README's default where the dataclass holds none (derived at start-up)

    @property
    def env(self) -> str:
        return ENV_PREFIX + self.name.removeprefix("--").replace("-", "_").upper()

    @property
    def param(self) -> str:
        """The keyword typer passes the value as."""
        return self.name.removeprefix("--").replace("-", "_")

    @property
    def default(self) -> Any:
        """The command line's default: the dataclass default, as the command line spells it."""
        if self.path is None:
            return self.process_default
        if self.convert is _negated:
            return not config_default(self.path)
        if self.convert is not None:
            return None
        return config_default(self.path)


def config_default(path: str) -> Any:
    """The default of a NodeConfig value, read from the dataclasses themselves."""
    value: Any = None
    owner: Any = NodeConfig
    for part in path.split("."):
        spec = {f.name: f for f in dataclasses.fields(owner)}[part]
        if spec.default is not dataclasses.MISSING:
            value = spec.default
        elif spec.default_factory is not dataclasses.MISSING:
            value = spec.default_factory()
        else:
            return None  # required (--data-dir)
        owner = type(value)
    return value


FLAGS: tuple[Flag, ...] = (
    Flag("--data-dir", "data_dir", "identity, token and default store", "DIR", shown="(required)"),
    Flag(
        "--profile",
        None,
        "start from a named profile: small (fast QoS, a few nodes) or large (calm rates, many nodes "
        "on one host); flags given override it",
        "NAME",
    ),
    Flag("--host", "host", "address to listen on"),
    Flag("--port", "port", "HTTP port"),
    Flag(
        "--store",
        "store_url",
        "sqlite:///PATH or postgresql://...",
        "URL",
        "rows in PostgreSQL are keyed by owner PeerId",
        shown="`sqlite:///DIR/mesh.db`",
    ),
    Flag("--bootstrap", "bootstrap", "peer URL to join (repeatable)", "URL", convert=_listed),
    Flag(
        "--public-url",
        "public_url",
        "URL other peers use",
        "URL",
        "the URL peers dial and records carry",
        shown="`http://HOST:PORT`",
    ),
    Flag(
        "--no-public-url",
        "no_public_url",
        "private mode: refuse HTTP offers, dial out, be reached only through the mesh",
        note="refused offers get 403 `private_node`; joins by dialling `--bootstrap`, is dialled by PeerId "
        "through the mesh",
    ),
    Flag(
        "--admin-token",
        "admin_token",
        "admin token",
        note="by default generated once into that file (mode 0600)",
        shown="`DIR/admin.token`",
    ),
    Flag("--session-lifetime", "session_lifetime_s", "dashboard login lasts this long (s)", "S"),
    Flag("--qos-interval", "qos_interval", "seconds per QoS sample", "S"),
    Flag("--probe-rate", "probe_rate", "probes per second per link", "R"),
    Flag("--gossip-interval", "gossip_interval", "seconds between telemetry pushes", "S"),
    Flag(
        "--peer-refresh",
        "peer_refresh_s",
        "seconds between rewrites of this node's registry entry",
        "S",
        "10..150; each rewrite is one state message to every node, and a peer is marked gone after 300 s "
        "unheard",
    ),
    Flag(
        "--ice-servers",
        "ice_servers",
        "iceServers JSON, or a file holding it",
        "JSON|FILE",
        "RTCConfiguration `iceServers` (STUN/TURN)",
        convert=parse_ice_servers,
        shown="`[]`",
    ),
    Flag("--ice-relay-only", "ice_relay_only", "use only TURN relay candidates"),
    Flag("--d-lo", "degree.d_lo", "dial more peers below this many links", "N"),
    Flag("--d", "degree.d_target", "target number of links", "N"),
    Flag("--d-hi", "degree.d_hi", "prune links above this many", "N"),
    Flag(
        "--dial-allow",
        "dial_allow",
        "CIDR this node may dial (repeatable)",
        "CIDR",
        "also the ICE candidates accepted; an IPv6 "
        "address carrying an IPv4 one (mapped, NAT64, 6to4, Teredo…) must pass as both",
        convert=_listed,
        shown="any but link-local, metadata, multicast",
    ),
    Flag(
        "--cors-origin",
        "cors_origins",
        "origin whose pages may call the API (repeatable)",
        "ORIGIN",
        "`https://app.example`, without cookies; `/f0peer.js`, `/healthz`, `/offer` and `/answer` answer "
        "every origin, so any page can join as a peer",
        convert=_listed,
        shown="none",
    ),
    Flag(
        "--state-writers",
        "state_writers",
        "PeerIds (comma-separated, repeatable) that may write the documents this node creates",
        "PEERID,...",
        "named in the signed write policy of each document this node creates; others' writes get 403 here "
        "and are dropped with an audit row from the mesh",
        convert=_comma_listed,
        shown="none",
    ),
    Flag("--max-links", "max_links", "most links this node holds", "N", "offers beyond it get 429"),
    Flag(
        "--heartbeat-timeout",
        "heartbeat_timeout",
        "silence that fails a link (s)",
        "S",
        "heartbeats go out every quarter of it",
    ),
    Flag(
        "--connect-timeout",
        "connect_timeout",
        "a link not open after this long fails (s)",
        "S",
        "ICE, DTLS and SCTP together; raise it for slow or lossy paths",
    ),
    Flag(
        "--location",
        "location",
        "lat,lon for the map view",
        "LAT,LON",
        "decimal degrees (`48.85,2.35`): the dashboard's map and globe",
    ),
    Flag(
        "--tag",
        "tags",
        "key=value in the signed peer record, for query filters (repeatable)",
        "KEY=VALUE",
        "keys 1–32 of `a-z 0-9 _ . -`, values up to 128 characters, at most 16 tags; `f0mesh peers` shows "
        "them, `f0mesh query --tag` selects by them",
        convert=_tags,
        shown="none",
    ),
    Flag(
        "--name",
        "name",
        "a name for this node, shown next to its PeerId",
        "NAME",
        "1–32 printable characters (`/healthz`, telemetry, dashboard)",
    ),
    Flag("--private-read", "open_read", "read API, metrics and docs need the admin token", convert=_negated),
    Flag("--log-level", None, "how much to log: debug, info, warning or error", process_default="info"),
    Flag("--log-json", None, "one JSON object per log line", process_default=False),
    Flag(
        "--tls-cert",
        "tls_cert",
        "serve HTTPS with this certificate (PEM chain)",
        "F",
        "the advertised URL becomes `https://`",
    ),
    Flag("--tls-key", "tls_key", "private key of --tls-cert (PEM)", "F"),
    Flag(
        "--tls-ca",
        "tls_ca",
        "verify HTTPS peers against this CA bundle (not the system store)",
        "F",
        shown="system store",
    ),
    Flag(
        "--tls-client-ca",
        "tls_client_ca",
        "admin API and dashboard on --admin-port, for clients with a cert from this CA",
        "F",
        "the token is still required; the main port then serves peers only",
    ),
    Flag("--admin-port", "admin_port", "port of the mTLS admin listener", "P"),
    Flag(
        "--http-header-timeout",
        "http_header_timeout",
        "408 when headers take longer (s)",
        "S",
        "the body then has S more plus 1 s per 2 KiB",
    ),
    Flag(
        "--http-max-pending",
        "http_max_pending",
        "connections owing a request; past it the oldest is closed",
        "N",
    ),
    Flag("--gossip-d", "gossip.d", "push peers picked by trust", "N"),
    Flag("--gossip-d-lo", "gossip.d_lo", "pick more push peers below this", "N"),
    Flag("--gossip-d-hi", "gossip.d_hi", "most push peers", "N"),
    Flag("--gossip-ttl", "gossip.ttl", "hop limit of own messages", "N"),
    Flag("--gossip-heartbeat", "gossip.heartbeat_s", "seconds between IHAVE rounds", "S"),
    Flag("--gossip-threshold", "gossip.gossip_threshold", "no IHAVE to or from peers scored below", "X"),
    Flag(
        "--gossip-publish-threshold",
        "gossip.publish_threshold",
        "own messages not flooded to peers below",
        "X",
    ),
    Flag(
        "--gossip-graylist",
        "gossip.graylist_threshold",
        "ignore and disconnect peers scored below",
        "X",
        "graylist <= publish <= gossip threshold <= 0",
    ),
    Flag(
        "--topic",
        "topics",
        "subscribe to this gossip topic (repeatable)",
        "T",
        "a node carries, stores and relays only its topics and the system ones (telemetry, trust, "
        "state); without `--topic` it takes every topic (`*`); change at run time with "
        "`/api/gossip/subscriptions`",
        convert=_listed,
        shown="every topic (`*`)",
    ),
    Flag(
        "--pex-min-trust",
        "pex_min_trust",
        "trust a neighbour needs to teach this node peers, times an even share",
        "X",
    ),
    Flag("--peer-store-max", "peer_store_max", "most peers learned by peer exchange kept", "N"),
    Flag("--dial-rate", "dial_rate", "automatic dials per second, all peers together", "R"),
    Flag("--gc-interval", "gc_interval_s", "seconds between collections of dead links", "S"),
    Flag(
        "--stranger-retention",
        "stranger_retention_s",
        "seconds failed links and unlinked strangers stay visible",
        "S",
    ),
)
BY_NAME: dict[str, Flag] = {flag.name: flag for flag in FLAGS}
BY_PARAM: dict[str, Flag] = {flag.param: flag for flag in FLAGS}
BY_PATH: dict[str, Flag] = {flag.path: flag for flag in FLAGS if flag.path}


def node_config(data_dir: Path | str, given: Mapping[str, Any], profile: str | None = None) -> NodeConfig:
    """The NodeConfig of a command line: the dataclass defaults, then the profile's values, then the
    flags an operator gave (``given``: flag name -> the command line's value). One ConfigError names
    the flag of a bad value."""
    values: dict[str, Any] = dict(profile_values(profile))
    for name, raw in given.items():
        flag = BY_NAME[name]
        if flag.path is None:
            raise ConfigError(f"{name} is a setting of the process, not of the node")
        values[flag.path] = raw if flag.convert is None else flag.convert(raw)
    return build(data_dir, values)


def profile_values(profile: str | None) -> Mapping[str, Any]:
    if profile is None:
        return {}
    if profile not in PROFILES:
        raise ConfigError(f"--profile: {profile!r} is not one of {', '.join(sorted(PROFILES))}")
    return PROFILES[profile]


def build(data_dir: Path | str, values: Mapping[str, Any]) -> NodeConfig:
    """A NodeConfig from config paths (``gossip.d``) to values; the composed params keep their
    other defaults. Raises ConfigError naming the flag of a bad value."""
    top: dict[str, Any] = {}
    layers: dict[str, dict[str, Any]] = {}
    for path, value in values.items():
        layer, _, name = path.partition(".")
        if name:
            layers.setdefault(layer, {})[name] = value
        else:
            top[path] = value
    for layer, changes in layers.items():
        try:
            top[layer] = dataclasses.replace(config_default(layer), **changes)
        except (ConfigError, TypeError, ValueError) as exc:
            flags = " / ".join(
                BY_PATH[f"{layer}.{name}"].name for name in changes if f"{layer}.{name}" in BY_PATH
            )
            raise ConfigError(f"{flags or layer}: {getattr(exc, 'detail', exc)}") from exc
    return NodeConfig(data_dir=Path(data_dir), **top)


def render(flags: Mapping[str, Any]) -> list[str]:
    """A command line from flag name -> value, as typer reads it back: a list repeats the flag,
    True is the bare switch, False and None leave the flag out."""
    argv: list[str] = []
    for name, value in flags.items():
        if name not in BY_NAME:
            raise ValueError(f"f0mesh up has no flag {name}")
        if value is None or value is False:
            continue
        if value is True:
            argv.append(name)
        elif isinstance(value, list | tuple):
            for item in value:
                argv += [name, str(item)]
        else:
            argv += [name, str(value)]
    return argv


def profile_flags(profile: str) -> list[str]:
    """A profile as the flags that would set the same values by hand."""
    return render({BY_PATH[path].name: _plain(value) for path, value in profile_values(profile).items()})


def readme_table() -> str:
    """The README's profiles and flags (tests/test_flags.py checks the README holds them)."""
    rows = ["| profile | the same as |", "|---|---|"]
    rows += [f"| `{name}` | `{' '.join(profile_flags(name))}` |" for name in PROFILES]
    rows += ["", "| flag | variable | default | meaning |", "|---|---|---|---|"]
    for flag in FLAGS:
        name = f"`{flag.name} {flag.metavar}`" if flag.metavar else f"`{flag.name}`"
        meaning = flag.help + (f"; {flag.note}" if flag.note else "")
        rows.append(f"| {name.replace('|', chr(92) + '|')} | `{flag.env}` | {_shown(flag)} | {meaning} |")
    return "\n".join(rows) + "\n"


def _plain(value: Any) -> Any:
    return int(value) if isinstance(value, float) and value.is_integer() else value


def _shown(flag: Flag) -> str:
    default = flag.default
    if flag.shown:
        return flag.shown
    if default is None or default == [] or default is False:
        return "off" if default is False or flag.convert is _negated else "none"
    if default is True:
        return "on"
    return f"`{_plain(default)}`"
