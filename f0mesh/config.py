"""A node's settings: one dataclass composing the layers' params, which the CLI fills from flags and
F0MESH_* variables (f0mesh/flags.py) over a named profile (f0mesh/profiles.py).

Built in code or from the command line, a NodeConfig holds the same rules: derived values are
properties, and every bad value is one ConfigError naming the flag an operator would change."""

from __future__ import annotations

import json
import math
import os
import re
import secrets
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from f0mesh.errors import ConfigError
from f0mesh.gossip.envelope import MAX_TTL
from f0mesh.gossip.params import GossipParams
from f0mesh.gossip.topics import MAX_TOPIC_CHARS, MAX_TOPICS, is_topic
from f0mesh.identity import is_peer_id
from f0mesh.peer_record import check_tags
from f0mesh.rtc.degree import DegreeParams
from f0mesh.state.manager import StateParams
from f0mesh.trust.score_params import TrustParams
from f0mesh.trust.service import NODE_TRUST_PARAMS

MAX_GOSSIP_DEGREE = 64
MAX_LINK_DEGREE = 1024
GOSSIP_HEARTBEAT_S = (0.05, 60.0)
MAX_NAME_CHARS = 32
HEARTBEATS_PER_TIMEOUT = 4  # three lost beats are not yet a failure
GONE_AFTER_S = StateParams().gone_after_s
PEER_REFRESH_S = (10.0, GONE_AFTER_S / 2)  # two refreshes before a silent peer is gone


def valid_name(value: object) -> bool:
    """A node name an operator chose: 1..32 printable characters (no control or separator codes)."""
    return isinstance(value, str) and 0 < len(value) <= MAX_NAME_CHARS and value.isprintable()


# the dashboard's parseLocation (util.js) reads the same form; peer records carry at most 64 chars
LOCATION_RE = re.compile(r"^\s*(-?\d{1,3}(?:\.\d{1,10})?)\s*,\s*(-?\d{1,3}(?:\.\d{1,10})?)\s*$")


@dataclass
class NodeConfig:
    data_dir: Path
    host: str = "127.0.0.1"
    port: int = 8700
    store_url: str | None = None
    bootstrap: list[str] = field(default_factory=list)
    public_url: str | None = None
    # private mode: no inbound HTTP offers; joins by dialling out, reachable only through the mesh
    no_public_url: bool = False
    admin_token: str | None = None
    qos_interval: float = 15.0
    probe_rate: float = 1.0
    gossip_interval: float = 120.0
    peer_refresh_s: float = 60.0  # StateParams.peer_refresh_s: how often a node rewrites its registry entry
    ice_servers: list[dict[str, Any]] = field(default_factory=list)
    ice_relay_only: bool = False
    dial_allow: list[str] = field(default_factory=list)
    cors_origins: list[str] = field(default_factory=list)  # pages of these origins may call the whole API
    max_body_bytes: int = 1 << 20
    max_links: int = 64
    max_pending_offers: int = 32
    degree: DegreeParams = field(default_factory=DegreeParams)
    location: str | None = None
    name: str | None = None
    tags: dict[str, str] = field(default_factory=dict)  # --tag key=value, in the signed peer record
    open_read: bool = True
    heartbeat_timeout: float = 4.0
    connect_timeout: float = 15.0
    sample_retention_s: float = 7 * 86400.0
    gossip_retention_s: float = 30 * 86400.0
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_ca: Path | None = None
    tls_client_ca: Path | None = None
    admin_port: int | None = None
    session_lifetime_s: float = 12 * 3600.0
    http_header_timeout: float = 10.0
    http_min_body_rate: float = 2048.0
    http_max_pending: int = 256
    sse_max_anonymous: int = 32
    sse_max_per_client: int = 4
    sse_admin_streams: int = 16
    gossip: GossipParams = field(default_factory=GossipParams)
    trust: TrustParams = field(default_factory=lambda: NODE_TRUST_PARAMS)
    # strangers (issue 20): who may teach this node peers, how many it keeps, how fast it dials them
    pex_min_trust: float = 0.5  # a fraction of an even share of trust (1 / scored peers)
    peer_store_max: int = 1024
    dial_rate: float = 2.0
    dial_burst: int = 10
    gc_interval_s: float = 60.0
    stranger_retention_s: float = 3600.0
    link_rows_max: int = 1000
    reassembly_total_bytes: int = 256 << 20
    state_writers: list[str] = field(default_factory=list)  # named in the policy of each document created
    topics: list[str] = field(default_factory=list)  # gossip topics subscribed at start; none: every topic

    def __post_init__(self) -> None:
        self.data_dir = Path(self.data_dir)
        if not (0 < self.port < 65536):
            raise ConfigError(f"--port {self.port} is not a TCP port")
        if self.name is not None and not valid_name(self.name):
            raise ConfigError(f"--name must be 1 to {MAX_NAME_CHARS} printable characters, e.g. berlin-1")
        if not (60 <= self.session_lifetime_s <= 366 * 86400):
            raise ConfigError("--session-lifetime must be between 60 s and a year")
        if self.no_public_url and self.public_url:
            raise ConfigError("--no-public-url and --public-url exclude each other")
        self._check_degree()
        timeout = self.heartbeat_timeout
        if not (isinstance(timeout, int | float) and 0.2 <= timeout <= 3600):
            raise ConfigError(f"--heartbeat-timeout: must be 0.2..3600 seconds, got {timeout!r}")
        if not (1 <= self.connect_timeout <= 600):
            raise ConfigError(f"--connect-timeout: must be 1..600 seconds, got {self.connect_timeout!r}")
        low, high = PEER_REFRESH_S
        if not (isinstance(self.peer_refresh_s, int | float) and low <= self.peer_refresh_s <= high):
            raise ConfigError(
                f"--peer-refresh: must be {low:g}..{high:g} seconds (two refreshes within the registry's "
                f"{GONE_AFTER_S:g} s before a silent peer is marked gone), got {self.peer_refresh_s!r}"
            )
        for url in self.bootstrap:
            check_peer_url("--bootstrap", url)
        if self.public_url:
            check_peer_url("--public-url", self.public_url)
        if self.location is not None:
            self.location = parse_location(self.location)
        try:
            self.tags = check_tags(self.tags)
        except ValueError as exc:
            raise ConfigError(f"--tag: {exc}") from exc
        self._check_http_limits()
        self._check_gossip()
        self._check_tls()
        self._check_strangers()
        if len(self.topics) > MAX_TOPICS or not all(is_topic(t) for t in self.topics):
            raise ConfigError(
                f"--topic: at most {MAX_TOPICS} topics, each 1-{MAX_TOPIC_CHARS} characters of "
                "A-Za-z0-9_.:/- (or * for every topic)"
            )
        for writer in self.state_writers:
            if not is_peer_id(writer):
                raise ConfigError(f"--state-writers: {writer[:80]!r} is not a PeerId")

    def _check_strangers(self) -> None:
        """Limits on what strangers may cost; each must be a real bound, never off."""
        if not (0.0 <= self.pex_min_trust <= 100.0):
            raise ConfigError("--pex-min-trust must be between 0 and 100 (times an even share of trust)")
        if not (16 <= self.peer_store_max <= 1_000_000):
            raise ConfigError("--peer-store-max must be between 16 and 1000000")
        if not (0.01 <= self.dial_rate <= 1000) or not (1 <= self.dial_burst <= 10_000):
            raise ConfigError("--dial-rate must be 0.01..1000 per second and --dial-burst 1..10000")
        if not (0.1 <= self.gc_interval_s <= 86400):
            raise ConfigError("--gc-interval must be between 0.1 s and a day")
        if not (0 <= self.stranger_retention_s <= 30 * 86400):
            raise ConfigError("--stranger-retention must be between 0 s and 30 days")
        if not (0 <= self.link_rows_max <= 1_000_000):
            raise ConfigError("--link-rows-max must be between 0 and 1000000")
        if not (1 << 20 <= self.reassembly_total_bytes <= 1 << 40):
            raise ConfigError("--reassembly-total must be between 1 MiB and 1 TiB")

    def _check_http_limits(self) -> None:
        if not (0.1 <= self.http_header_timeout <= 3600):
            raise ConfigError(f"--http-header-timeout {self.http_header_timeout} is not in 0.1..3600 s")
        if not (1 <= self.http_max_pending <= 1_000_000):
            raise ConfigError(f"--http-max-pending {self.http_max_pending} is not in 1..1000000")
        if not self.http_min_body_rate > 0:
            raise ConfigError("http_min_body_rate must be a positive number of bytes per second")
        if self.sse_max_anonymous < 0 or self.sse_max_per_client < 1 or self.sse_admin_streams < 1:
            raise ConfigError("event stream caps: anonymous >= 0, per client >= 1, admin >= 1")

    def _check_degree(self) -> None:
        degree = self.degree
        for flag, value in (("--d-lo", degree.d_lo), ("--d", degree.d_target), ("--d-hi", degree.d_hi)):
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_LINK_DEGREE:
                raise ConfigError(f"{flag}: must be an integer in 0..{MAX_LINK_DEGREE}, got {value!r}")
        if not (degree.d_lo <= degree.d_target <= degree.d_hi):
            raise ConfigError(
                f"--d-lo <= --d <= --d-hi must hold, got {degree.d_lo}, {degree.d_target}, {degree.d_hi}"
            )

    def _check_gossip(self) -> None:
        """The operator's part of GossipParams (the rest is checked by GossipParams itself)."""
        gossip = self.gossip
        for flag, value, top in (
            ("--gossip-d", gossip.d, MAX_GOSSIP_DEGREE),
            ("--gossip-d-lo", gossip.d_lo, MAX_GOSSIP_DEGREE),
            ("--gossip-d-hi", gossip.d_hi, MAX_GOSSIP_DEGREE),
            ("--gossip-ttl", gossip.ttl, MAX_TTL),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= top:
                raise ConfigError(f"{flag}: must be an integer in 1..{top}, got {value!r}")
        if not gossip.d_lo <= gossip.d <= gossip.d_hi:
            raise ConfigError(
                "--gossip-d-lo <= --gossip-d <= --gossip-d-hi must hold, "
                f"got {gossip.d_lo}, {gossip.d}, {gossip.d_hi}"
            )
        low, high = GOSSIP_HEARTBEAT_S
        heartbeat = gossip.heartbeat_s
        if not (isinstance(heartbeat, int | float) and math.isfinite(heartbeat) and low <= heartbeat <= high):
            raise ConfigError(f"--gossip-heartbeat: must be {low}..{high} seconds, got {heartbeat!r}")

    def _check_tls(self) -> None:
        """Bad TLS settings fail at start-up with the flag named, not at the first handshake."""
        for name in ("tls_cert", "tls_key", "tls_ca", "tls_client_ca"):
            value = getattr(self, name)
            setattr(self, name, Path(value) if value else None)
        if bool(self.tls_cert) != bool(self.tls_key):
            raise ConfigError("--tls-cert and --tls-key go together: give both or neither")
        if self.tls_cert and self.tls_key:
            try:
                server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
                server.load_cert_chain(self.tls_cert, self.tls_key)
            except (OSError, ssl.SSLError) as exc:
                raise ConfigError(
                    f"--tls-cert {self.tls_cert} / --tls-key {self.tls_key}: cannot load: {_reason(exc)}"
                ) from exc
        for flag, path in (("--tls-ca", self.tls_ca), ("--tls-client-ca", self.tls_client_ca)):
            if path is not None:
                load_ca(flag, path)
        if self.tls_client_ca is not None:
            if not self.tls_cert:
                raise ConfigError("--tls-client-ca needs --tls-cert and --tls-key: the admin port serves TLS")
            if self.admin_port is None:
                raise ConfigError(
                    "--tls-client-ca needs --admin-port: the mTLS admin API has a listener of its own"
                )
        elif self.admin_port is not None:
            raise ConfigError(
                "--admin-port needs --tls-client-ca: the admin listener accepts only client certificates"
            )
        if self.admin_port is not None:
            if not (0 < self.admin_port < 65536):
                raise ConfigError(f"--admin-port {self.admin_port} is not a TCP port")
            if self.admin_port == self.port:
                raise ConfigError("--admin-port must differ from --port")

    @property
    def heartbeat_interval(self) -> float:
        """Seconds between a link's heartbeats: a quarter of the silence that fails it."""
        return self.heartbeat_timeout / HEARTBEATS_PER_TIMEOUT

    @property
    def tls(self) -> bool:
        return self.tls_cert is not None

    @property
    def admin_split(self) -> bool:
        """The admin API and dashboard live on the mTLS admin port; the main port serves peers only."""
        return self.admin_port is not None

    @property
    def resolved_store_url(self) -> str:
        from f0mesh.store.url import default_store_url  # the store package is heavy for the CLI

        return self.store_url or default_store_url(self.data_dir)

    @property
    def advertised_url(self) -> str:
        if self.public_url:
            return self.public_url.rstrip("/")
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::", "") else self.host
        if ":" in host:
            host = f"[{host}]"
        return f"{'https' if self.tls else 'http'}://{host}:{self.port}"

    def load_admin_token(self) -> str:
        """The configured token, or the one generated once into DATA_DIR/admin.token (mode 0600)."""
        if self.admin_token:
            return self.admin_token
        return ensure_admin_token(self.data_dir)


def check_peer_url(flag: str, url: str) -> str:
    """A URL a peer is reached at: a scheme and a host, or the node would retry it forever."""
    if "://" not in url:
        raise ConfigError(f"{flag} {url} has no scheme: write http://{url} (or https://{url} with TLS)")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise ConfigError(f"{flag} {url}: only http:// and https:// URLs are used, not {parts.scheme}://")
    try:
        host, _port = parts.hostname, parts.port  # .port raises on a port that is not one
    except ValueError as exc:
        raise ConfigError(f"{flag} {url}: bad port: {exc}") from exc
    if not host:
        raise ConfigError(f"{flag} {url} names no host: e.g. http://192.0.2.10:8700")
    return url


def parse_location(value: str) -> str:
    """``--location LAT,LON`` in decimal degrees, as the dashboard's map reads it; normalised."""
    match = LOCATION_RE.match(value)
    if match and abs(float(match[1])) <= 90 and abs(float(match[2])) <= 180:
        return f"{match[1]},{match[2]}"
    raise ConfigError(
        f"--location {value!r} is not LAT,LON in decimal degrees: e.g. --location 48.85,2.35 "
        "(latitude -90..90, longitude -180..180)"
    )


def ensure_admin_token(data_dir: Path) -> str:
    path = Path(data_dir) / "admin.token"
    if path.exists():
        token = path.read_text().strip()
        if not token:
            raise ConfigError(f"{path} is empty; delete it to generate a new admin token")
        return token
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    token = secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as fh:
        fh.write(token + "\n")
    return token


def load_ca(flag: str, path: Path) -> ssl.SSLContext:
    """A client context trusting only the CA bundle at ``path``; a bad bundle is a ConfigError."""
    try:
        return ssl.create_default_context(cafile=str(path))
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"{flag} {path}: cannot load a CA bundle: {_reason(exc)}") from exc


def _reason(exc: OSError | ssl.SSLError) -> str:
    return str(getattr(exc, "reason", None) or exc.strerror or exc)


def parse_ice_servers(value: str | None) -> list[dict[str, Any]]:
    """``--ice-servers``: the RTCConfiguration iceServers JSON, inline or in a file."""
    if not value:
        return []
    text = value
    if not value.lstrip().startswith(("[", "{")):
        try:
            text = Path(value).read_text()
        except OSError as exc:
            raise ConfigError(f"--ice-servers: cannot read {value}: {exc.strerror}") from exc
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"--ice-servers is not valid JSON: {exc.msg} at line {exc.lineno}") from exc
    if isinstance(data, dict) and "iceServers" in data:
        data = data["iceServers"]
    if not isinstance(data, list) or not all(isinstance(s, dict) and "urls" in s for s in data):
        raise ConfigError('--ice-servers must be a list of {"urls": ..., "username"?, "credential"?}')
    return data
