"""deploy/: the systemd unit's hardening, its env file, the coturn example and the Grafana dashboard."""

from __future__ import annotations

import datetime as dt
import json
import re
import shutil
import socket
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import typer.main
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from network.turnserver import MAKE_DEPS, free_udp_tcp_port, stun_binding

from f0mesh.cli import app
from f0mesh.gossip.stats import TOPIC_METRICS, GossipStats
from f0mesh.metrics import NodeMetrics
from f0mesh.rtc.framing import FramingStats
from f0mesh.rtc.udp_buffers import BufferSizes

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
UNIT = DEPLOY / "f0mesh.service"


def parse_unit(text: str) -> dict[str, dict[str, list[str]]]:
    """Sections -> key -> every value in order (systemd keys may repeat; configparser cannot say so)."""
    sections: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    section = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, sep, value = line.partition("=")
        assert sep, f"not key=value in [{section}]: {line!r}"
        sections[section][key.strip()].append(value.strip())
    return sections


def _up_params() -> list[Any]:
    return typer.main.get_command(app).commands["up"].params  # type: ignore[attr-defined]


def _up_envvars() -> set[str]:
    return {p.envvar for p in _up_params() if isinstance(p.envvar, str)}


def test_systemd_unit_is_hardened() -> None:
    unit = parse_unit(UNIT.read_text())
    service = {k: v[-1] for k, v in unit["Service"].items()}
    assert service["User"] == "f0mesh" and service["Group"] == "f0mesh"
    assert "DynamicUser" not in service  # the identity key keeps one owner
    for key, value in {
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "PrivateDevices": "yes",
        "CapabilityBoundingSet": "",
        "AmbientCapabilities": "",
        "RestrictSUIDSGID": "yes",
        "StateDirectory": "f0mesh",
        "StateDirectoryMode": "0700",
        "UMask": "0077",
    }.items():
        assert service.get(key) == value, (key, service.get(key))
    assert set(service["RestrictAddressFamilies"].split()) == {"AF_INET", "AF_INET6", "AF_UNIX", "AF_NETLINK"}
    assert service["ReadWritePaths"].split() == ["/var/lib/f0mesh"]
    assert "F0MESH_DATA_DIR=/var/lib/f0mesh" in service["Environment"].split()  # = the StateDirectory
    assert service["EnvironmentFile"] == "/etc/f0mesh/f0mesh.env"
    assert service["ExecStart"].endswith("/f0mesh up")
    assert unit["Service"]["SystemCallFilter"] == ["@system-service", "~@privileged @resources"]
    assert unit["Install"]["WantedBy"] == ["multi-user.target"]


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_systemd_analyze_accepts_the_unit(tmp_path: Path) -> None:
    """systemd's own parser: no unknown key or bad value (it logs "ignoring" for those), low exposure."""
    f0mesh = Path(sys.executable).with_name("f0mesh")  # verify checks that ExecStart exists
    assert f0mesh.exists()
    unit = tmp_path / "f0mesh.service"
    unit.write_text(UNIT.read_text().replace("/opt/f0mesh/bin/f0mesh", str(f0mesh)))
    r = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stderr.strip() == "", r.stderr
    r = subprocess.run(
        ["systemd-analyze", "security", "--offline=yes", "--no-pager", str(unit)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    found = re.search(r"Overall exposure level for f0mesh\.service: ([0-9.]+)", r.stdout)
    assert found, r.stdout[-1000:] + r.stderr
    assert float(found.group(1)) <= 2.0, r.stdout


def test_env_file_names_only_real_settings() -> None:
    """Every F0MESH_* in the example env file (commented ones too) is a flag of ``f0mesh up``."""
    names = re.findall(r"^#?(F0MESH_[A-Z_]+)=", (DEPLOY / "f0mesh.env").read_text(), re.M)
    known = _up_envvars()
    assert names and set(names) <= known, set(names) - known
    assert {
        "F0MESH_TLS_CERT",
        "F0MESH_TLS_KEY",
        "F0MESH_TLS_CA",
        "F0MESH_TLS_CLIENT_CA",
        "F0MESH_ADMIN_PORT",
    } <= set(names)


def test_coturn_example_is_accepted_by_coturn(tmp_path: Path) -> None:
    """coturn reads the example (moved to loopback, test TLS files) without a complaint and answers STUN."""
    if shutil.which("turnserver") is None:
        pytest.fail(MAKE_DEPS, pytrace=False)
    port, tls_port = free_udp_tcp_port(), free_tcp_port()
    cert, key = _self_signed(tmp_path)
    replace = {
        "listening-ip": "127.0.0.1",
        "relay-ip": "127.0.0.1",
        "listening-port": str(port),
        "tls-listening-port": str(tls_port),
        "cert": str(cert),
        "pkey": str(key),
        "log-file": str(tmp_path / "turn.log"),
    }
    lines = []
    for line in (DEPLOY / "turnserver.conf").read_text().splitlines():
        key = line.split("=", 1)[0]
        lines.append(f"{key}={replace.pop(key)}" if key in replace else line)
    assert not replace, f"the example lost its {sorted(replace)} lines"
    lines += [
        f"pidfile={tmp_path / 'turn.pid'}",
        f"userdb={tmp_path / 'turndb'}",
        "min-port=49160",
        "max-port=49170",
    ]
    conf = tmp_path / "turnserver.conf"
    conf.write_text("\n".join(lines) + "\n")
    proc = subprocess.Popen(
        ["turnserver", "-c", str(conf)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 15
        while not stun_binding(port):
            assert proc.poll() is None, "turnserver exited"
            assert time.monotonic() < deadline, "turnserver did not answer STUN"
            time.sleep(0.1)
        log = (tmp_path / "turn.log").read_text(errors="replace")
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    assert "Bad configuration format" not in log and "ERROR" not in log, log[-2000:]
    assert "Default realm: f0mesh" in log
    assert "Black listing: 10.0.0.0-10.255.255.255" in log  # the relay refuses private networks
    assert "Certificate file found" in log


def _self_signed(d: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "turn.test")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    (d / "turn.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (d / "turn.key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return d / "turn.pem", d / "turn.key"


def free_tcp_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _exposed_metric_names() -> set[str]:
    """Every family and series name a node can expose, those that appear on first use included."""

    class FakeLink:
        peer_id, bytes_sent, bytes_received = "12D3KooWother", 10, 20
        framed = SimpleNamespace(stats=FramingStats(frames_out=3, frames_in=4))
        udp_buffers = BufferSizes(4 << 20, 4 << 20)

    metrics = NodeMetrics("12D3KooWtest")
    stats = GossipStats()
    stats.rejected["bad_signature"] += 1
    for counter in TOPIC_METRICS:
        stats.count(counter, "chat")
    metrics.add_counters("f0mesh_gossip", stats.samples)
    metrics.watch_links(lambda: [FakeLink()])
    text = metrics.render().decode()
    return set(re.findall(r"^# TYPE (\S+) ", text, re.M)) | set(
        re.findall(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)[{ ]", text, re.M)
    )


def test_grafana_dashboard_queries_real_series() -> None:
    dashboard = json.loads((DEPLOY / "grafana-dashboard.json").read_text())
    panels = [p for p in dashboard["panels"] if p["type"] != "row"]
    exprs = [t["expr"] for p in panels for t in p["targets"]]
    used = {m for e in exprs for m in re.findall(r"\b((?:f0mesh|process)_[a-z_]+)\b", e)}
    exposed = _exposed_metric_names()
    assert used <= exposed, used - exposed
    for required in (
        "f0mesh_link_rtt_seconds",
        "f0mesh_link_loss_ratio",
        "f0mesh_link_health",
        "f0mesh_links_open",
        "f0mesh_gossip_delivery_latency_seconds_bucket",
    ):
        assert required in used
    assert any(m.startswith("f0mesh_gossip_") for m in used)
    # legends name nodes and peers by the tail of their PeerId, as the node's own dashboard does
    legends = [t["legendFormat"] for p in panels for t in p["targets"]]
    assert not any("{{instance}}" in legend or "{{peer_id}}" in legend for legend in legends)
    assert any("{{node}}" in legend for legend in legends)
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    assert all(t["datasource"]["uid"] == "${DS_PROMETHEUS}" for p in panels for t in p["targets"])


def test_operations_guide_names_real_metrics_and_flags() -> None:
    guide = (REPO / "docs" / "operations.md").read_text()
    named = set(re.findall(r"`((?:f0mesh|gossipsub)_[a-z_]+)`", guide))
    assert {"f0mesh_link_loss_ratio", "f0mesh_links_open", "f0mesh_build_info"} <= named
    assert named <= _exposed_metric_names(), named - _exposed_metric_names()
    known = {o for p in _up_params() for o in p.opts}
    new = {"--tls-cert", "--tls-key", "--tls-ca", "--tls-client-ca", "--admin-port"}
    assert new <= known
    mentioned = set(re.findall(r"(--(?:tls|admin)-[a-z-]+)", guide))
    assert new <= mentioned and mentioned <= known, (new - mentioned, mentioned - known)
