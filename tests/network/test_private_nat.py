"""Private nodes behind kernel NATs (issue 23): signaled through the bootstrap over DataChannels.

Five network namespaces made by the test (veth pairs, a bridge, nftables masquerade)::

    X (f0mesh --no-public-url) -- NAT-X ---\\
                                            br0 in PUB: bootstrap node + coturn (STUN and TURN)
    Y (f0mesh --no-public-url) -- NAT-Y ---/

The private hosts sit on 192.168.{2,3}.0/24; PUB has no route to them, so their host candidates are
useless and the only way in is through the NAT's mapping. Like a home router, the NAT drops what
nobody asked for without a word (an ICMP error would fail an ICE check for good, and a conntrack
entry for it would cost the next outgoing flow its port). Plain ``masquerade`` keeps the source port
(endpoint-independent mapping): ICE punches through with server-reflexive or peer-reflexive candidates
and the link is direct. ``masquerade fully-random`` gives each destination a new port (a symmetric
NAT): the reflexive address STUN reported is useless to the peer, and the link needs TURN.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from network.turnserver import MAKE_DEPS

from nodes import wait_for

PY = sys.executable
PORTFWD = str(Path(__file__).resolve().parent.parent / "netlab" / "portfwd.py")
PUB_IP = "10.98.0.1"
TURN_PORT = 3478
USER, PASSWORD = "f0mesh-private", "private-relay-secret-3"
TOKEN = "private-nat-token-0123456789"


def sh(*argv: str) -> None:
    subprocess.run(argv, check=True, capture_output=True, timeout=20)


class NatLab:
    """The namespaces and the processes started in them; everything goes on close()."""

    def __init__(self) -> None:
        tag = f"{os.getpid() % 100000}"
        self.pub = f"f0p{tag}"
        self.names: list[str] = []
        self.procs: list[subprocess.Popen[Any]] = []

    def ns(self, name: str) -> str:
        sh("ip", "netns", "add", name)
        self.names.append(name)
        sh("ip", "-n", name, "link", "set", "lo", "up")
        return name

    def build(self, symmetric_y: bool) -> None:
        self.ns(self.pub)
        sh("ip", "-n", self.pub, "link", "add", "br0", "type", "bridge")
        sh("ip", "-n", self.pub, "addr", "add", f"{PUB_IP}/24", "dev", "br0")
        sh("ip", "-n", self.pub, "link", "set", "br0", "up")
        for side, n, symmetric in (("x", 2, False), ("y", 3, symmetric_y)):
            nat, host = self.ns(f"{self.pub}n{side}"), self.ns(f"{self.pub}h{side}")
            sh(
                "ip",
                "link",
                "add",
                "up0",
                "netns",
                nat,
                "type",
                "veth",
                "peer",
                "name",
                f"p{side}",
                "netns",
                self.pub,
            )
            sh("ip", "-n", self.pub, "link", "set", f"p{side}", "master", "br0", "up")
            sh("ip", "-n", nat, "addr", "add", f"10.98.0.{n}/24", "dev", "up0")
            sh("ip", "-n", nat, "link", "set", "up0", "up")
            sh(
                "ip",
                "link",
                "add",
                "lan0",
                "netns",
                nat,
                "type",
                "veth",
                "peer",
                "name",
                "eth0",
                "netns",
                host,
            )
            sh("ip", "-n", nat, "addr", "add", f"192.168.{n}.1/24", "dev", "lan0")
            sh("ip", "-n", nat, "link", "set", "lan0", "up")
            sh("ip", "-n", host, "addr", "add", f"192.168.{n}.2/24", "dev", "eth0")
            sh("ip", "-n", host, "link", "set", "eth0", "up")
            sh("ip", "-n", host, "route", "add", "default", "via", f"192.168.{n}.1")
            sh("ip", "netns", "exec", nat, "sysctl", "-qw", "net.ipv4.ip_forward=1")
            mode = "masquerade fully-random" if symmetric else "masquerade"
            rules = f"""
                table ip nat {{
                    chain masq {{
                        type nat hook postrouting priority srcnat;
                        oifname "up0" {mode}
                    }}
                }}
                table ip filter {{
                    chain lan_out {{
                        type filter hook forward priority filter; policy drop;
                        ct state established,related accept
                        iifname "lan0" oifname "up0" accept
                    }}
                    chain to_router {{
                        type filter hook input priority filter; policy drop;
                        ct state established,related accept
                        iifname "lan0" accept
                    }}
                }}
            """
            subprocess.run(
                ["ip", "netns", "exec", nat, "nft", "-f", "-"], input=rules, text=True, check=True, timeout=20
            )

    def host(self, side: str) -> str:
        return f"{self.pub}h{side}"

    def run(self, ns: str, argv: list[str], **kwargs: Any) -> subprocess.Popen[Any]:
        proc = subprocess.Popen(["ip", "netns", "exec", ns, *argv], **kwargs)
        self.procs.append(proc)
        return proc

    def forward(self, ns: str, port: int) -> int:
        """A root-namespace loopback port that reaches 127.0.0.1:PORT inside ``ns`` (netlab's portfwd)."""
        proc = subprocess.Popen(
            [PY, PORTFWD, f"/run/netns/{ns}", str(port)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.procs.append(proc)
        assert proc.stdout is not None
        return json.loads(proc.stdout.readline())["port"]

    def close(self) -> None:
        for proc in reversed(self.procs):
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=5)
        for name in reversed(self.names):
            subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=20)


class NsNode:
    def __init__(self, lab: NatLab, ns: str, data_dir: Path, extra: list[str]) -> None:
        data_dir.mkdir(parents=True, exist_ok=True)
        self.data_dir = data_dir
        self.ns = ns
        unset = [arg for key in os.environ if key.startswith("F0MESH_") for arg in ("-u", key)]
        argv = [
            "env", *unset, PY, "-m", "f0mesh", "up", "--host", "0.0.0.0", "--port", "8700",
            "--data-dir", str(data_dir), "--admin-token", TOKEN, "--log-level", "info",
            "--dial-allow", "10.98.0.0/24", "--dial-allow", "192.168.0.0/16", *extra,
        ]  # fmt: skip
        with open(data_dir / "node.log", "ab") as log:
            self.proc = lab.run(ns, argv, stdout=log, stderr=subprocess.STDOUT)
        api = lab.forward(ns, 8700)
        self.http = httpx.Client(
            base_url=f"http://127.0.0.1:{api}", timeout=30, headers={"Authorization": f"Bearer {TOKEN}"}
        )
        deadline = time.monotonic() + 45
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.log_tail()
            with contextlib.suppress(httpx.HTTPError, ValueError, KeyError):
                self.peer_id = self.http.get("/healthz", timeout=2).json()["peer_id"]
                return
            time.sleep(0.2)
        raise AssertionError(f"node did not start: {self.log_tail()}")

    def log_tail(self, n: int = 30) -> str:
        return "\n".join((self.data_dir / "node.log").read_text(errors="replace").splitlines()[-n:])

    def link(self, peer_id: str) -> dict[str, Any] | None:
        return next(
            (lk for lk in self.http.get("/api/mesh-rtc/links").json()["links"] if lk["peer_id"] == peer_id),
            None,
        )

    def knows(self, peer_id: str) -> bool:
        return any(p["peer_id"] == peer_id for p in self.http.get("/api/peers").json()["peers"])


def _turnserver(lab: NatLab, workdir: Path) -> None:
    if shutil.which("turnserver") is None:
        raise RuntimeError(MAKE_DEPS)
    workdir.mkdir(parents=True, exist_ok=True)
    argv = [
        "turnserver", "-n", f"--listening-ip={PUB_IP}", f"--relay-ip={PUB_IP}",
        f"--listening-port={TURN_PORT}",
        "--lt-cred-mech", f"--user={USER}:{PASSWORD}", "--realm=f0mesh",
        "--denied-peer-ip=0.0.0.0-255.255.255.255", "--allowed-peer-ip=10.98.0.1-10.98.0.254",
        "--no-cli", "--no-tls", "--no-dtls", "--no-rfc5780", f"--userdb={workdir / 'turndb'}",
        f"--pidfile={workdir / 'turnserver.pid'}", "--log-file=stdout", "--simple-log",
    ]  # fmt: skip
    with open(workdir / "turnserver.log", "wb") as log:
        lab.run(lab.pub, argv, stdout=log, stderr=subprocess.STDOUT)


@contextlib.contextmanager
def private_mesh(tmp_path: Path, *, symmetric_y: bool) -> Iterator[tuple[NsNode, NsNode, NsNode]]:
    lab = NatLab()
    try:
        lab.build(symmetric_y)
        _turnserver(lab, tmp_path / "turn")
        ice = json.dumps(
            [
                {"urls": f"stun:{PUB_IP}:{TURN_PORT}"},
                {"urls": f"turn:{PUB_IP}:{TURN_PORT}", "username": USER, "credential": PASSWORD},
            ]
        )
        boot = NsNode(
            lab, lab.pub, tmp_path / "boot", ["--public-url", f"http://{PUB_IP}:8700", "--ice-servers", ice]
        )
        private = ["--no-public-url", "--bootstrap", f"http://{PUB_IP}:8700", "--ice-servers", ice]
        x = NsNode(lab, lab.host("x"), tmp_path / "x", private)
        y = NsNode(lab, lab.host("y"), tmp_path / "y", private)
        yield boot, x, y
    finally:
        lab.close()


def _link_privately(boot: NsNode, x: NsNode, y: NsNode) -> tuple[dict[str, Any], dict[str, Any]]:
    for node in (x, y):
        wait_for(
            lambda n=node: (n.link(boot.peer_id) or {}).get("state") == "open", 45, what="bootstrap link"
        )
    wait_for(lambda: x.knows(y.peer_id), 45, what="X learns Y through the bootstrap")
    r = x.http.post("/dial", json={"peer_id": y.peer_id}, timeout=60)
    assert r.status_code == 200, f"{r.text}\nX: {x.log_tail()}\nY: {y.log_tail()}"
    out, into = x.link(y.peer_id), y.link(x.peer_id)
    assert out and into and out["signaling"] == "mesh" and into["signaling"] == "mesh", (out, into)
    published = x.http.post("/api/gossip", json={"topic": "behind-nat", "payload": {"hello": "y"}})
    assert published.status_code == 200, published.text
    wait_for(
        lambda: any(
            m["origin"] == x.peer_id
            for m in y.http.get("/api/gossip/messages", params={"topic": "behind-nat"}).json()["messages"]
        ),
        30,
        what="gossip X -> Y",
    )
    return out, into


def test_private_nodes_behind_cone_nats_link_directly(tmp_path) -> None:
    with private_mesh(tmp_path, symmetric_y=False) as (boot, x, y):
        out, into = _link_privately(boot, x, y)
        assert out["path"] in ("srflx", "prflx") and into["path"] in ("srflx", "prflx"), (out, into)
        assert "relay" not in out["ice"]["local"] + out["ice"]["remote"], out
        assert "10.98.0." in out["ice"]["remote"], out  # the NAT's public side, not a private host

        # The direct path dies (the bridge drops NAT-X <-> NAT-Y): aiortc cannot restart ICE, so the
        # heartbeat fails the link and the redial, signaled through the bootstrap again, finds TURN.
        lost = time.monotonic()
        cut = """
            table bridge cut {
                chain forward {
                    type filter hook forward priority 0;
                    ip saddr 10.98.0.2 ip daddr 10.98.0.3 drop
                    ip saddr 10.98.0.3 ip daddr 10.98.0.2 drop
                }
            }
        """
        subprocess.run(
            ["ip", "netns", "exec", boot.ns, "nft", "-f", "-"], input=cut, text=True, check=True, timeout=20
        )

        def relinked() -> dict[str, Any] | None:
            link = x.link(y.peer_id)
            return link if link and link["state"] == "open" and link["link_id"] != out["link_id"] else None

        again = wait_for(relinked, 60, what="a new link after the direct path was cut")
        print(f"path loss to a working link: {time.monotonic() - lost:.1f} s, now over {again['path']}")
        assert again["path"] == "relay" and again["signaling"] == "mesh", again


def test_symmetric_nat_falls_back_to_turn(tmp_path) -> None:
    with private_mesh(tmp_path, symmetric_y=True) as (boot, x, y):
        out, into = _link_privately(boot, x, y)
        assert out["path"] == "relay" and into["path"] == "relay", (out, into)
        metrics = y.http.get("/metrics").text
        assert 'f0mesh_links_opened_total{path="relay",signaling="mesh"} 1.0' in metrics
