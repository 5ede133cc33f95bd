"""Across NATs (issue 11 item 2): two peers that cannot reach each other link through a TURN relay.

Three netlab namespaces, joined by the user-space emulator::

    A (f0mesh up) ---- M (coturn :3478, TCP forwarders :8701 -> A:8700, :8702 -> B:8700) ---- B (f0mesh up)
          \\_____________________ loss 100 % both ways: nothing passes ______________________/

The emulator forwards between every pair of namespaces by default, so the direct pair A<->B gets
``LinkSpec(loss_pct=100)`` in both directions: every packet from one to the other is dropped, as
between two hosts behind separate NATs. No netlab change was needed for that.

Signaling over HTTP through the middle. f0mesh can forward signed SDP for others
(``POST /api/mesh-rtc/offer``), but nothing in its public surface makes a node *dial via* a relay
(``LinkManager._connect_outbound(..., via=)`` has no caller), and A would still need B's peer id and a
URL to reach B's worker. So M plays what an operator puts in front of a peer behind NAT: a reverse
proxy on a reachable host, here a plain TCP forwarder per peer. Each node's ``--public-url`` is its
forwarder on M, so every HTTP request between the peers (``/healthz``, ``/offer``, anything sent back
to the URL carried in the offer) crosses M, and the test checks the forwarder saw them.

The relay. coturn runs in M with long-term credentials and may relay only to M's own address: the
peers' host addresses stand for private addresses behind NATs, which a relay on the internet cannot
send to either. The nodes are *not* started with ``--ice-relay-only``: they offer their host
candidates too, ICE tries the direct pair first (the emulator counts those checks, dropped), and it is
ICE that has to find the relayed pair, as it would across real NATs. The link must end with a
``relay`` candidate on both sides, measure RTT over it and carry gossip from A to B; coturn's own log
must show the allocations and, once the nodes stop, the packets it relayed.
"""

from __future__ import annotations

import contextlib
import json
import re
import select
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from network.labnode import LabNode
from network.turnserver import MAKE_DEPS, TurnServer

from netlab import LinkSpec, Netlab, list_namespaces
from nodes import start_all, wait_for

PY = sys.executable
UDPTOOL = str(Path(__file__).resolve().parent.parent / "netlab" / "udptool.py")
SUBNET = "10.217.0.0/24"
A, M, B = 0, 1, 2
BLOCKED = LinkSpec(loss_pct=100.0)
NO_DIRECT_PATH = {(A, B): BLOCKED, (B, A): BLOCKED}
NODE_PORT = 8700
FORWARD_PORTS = {A: 8701, B: 8702}
TURN_PORT = 3478
USER, PASSWORD = "f0mesh-nat", "nat-relay-secret-7"
TOPIC = "across-nats"

# A TCP forwarder run inside M: argv = LOG_PATH then LISTEN_PORT TARGET_HOST TARGET_PORT triples. It
# appends the listening port of each accepted connection to LOG_PATH and prints {"ready": true}.
FORWARDER = r"""
import asyncio, json, sys

async def pipe(reader, writer):
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except OSError:
        pass
    finally:
        writer.close()

async def main(log_path, routes):
    async def handle(listen, host, port, c_reader, c_writer):
        with open(log_path, "a") as log:
            log.write(f"{listen}\n")
        try:
            t_reader, t_writer = await asyncio.wait_for(asyncio.open_connection(host, port), 10)
        except (OSError, TimeoutError):
            c_writer.close()
            return
        await asyncio.gather(pipe(c_reader, t_writer), pipe(t_reader, c_writer))

    servers = []
    for listen, host, port in routes:
        cb = lambda r, w, listen=listen, host=host, port=port: handle(listen, host, port, r, w)
        servers.append(await asyncio.start_server(cb, "0.0.0.0", listen))
    print(json.dumps({"ready": True}), flush=True)
    await asyncio.Event().wait()

args = sys.argv[2:]
routes = [(int(args[i]), args[i + 1], int(args[i + 2])) for i in range(0, len(args), 3)]
asyncio.run(main(sys.argv[1], routes))
"""

# A STUN Binding client (RFC 5389): argv = HOST PORT DEADLINE_S; retries until answered or the deadline;
# prints {"ok": bool, "attempts": n, "mapped": "ip:port" | null} (the XOR-MAPPED-ADDRESS it was told).
STUN_PROBE = r"""
import json, os, socket, struct, sys, time

host, port, deadline = sys.argv[1], int(sys.argv[2]), time.monotonic() + float(sys.argv[3])
cookie, attempts, mapped, ok = 0x2112A442, 0, None, False
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sock.settimeout(0.5)
while not ok and time.monotonic() < deadline:
    attempts += 1
    txid = os.urandom(12)
    try:
        sock.sendto(struct.pack(">HHI", 0x0001, 0, cookie) + txid, (host, port))
        data = sock.recv(2048)
    except OSError:
        time.sleep(0.1)
        continue
    if len(data) < 20 or struct.unpack(">H", data[:2])[0] != 0x0101 or data[8:20] != txid:
        continue
    ok, pos = True, 20
    while pos + 4 <= len(data):
        kind, length = struct.unpack(">HH", data[pos : pos + 4])
        if kind == 0x0020 and length >= 8:
            xport = struct.unpack(">H", data[pos + 6 : pos + 8])[0] ^ (cookie >> 16)
            xaddr = struct.unpack(">I", data[pos + 8 : pos + 12])[0] ^ cookie
            mapped = f"{socket.inet_ntoa(struct.pack('>I', xaddr))}:{xport}"
        pos += 4 + length + (-length % 4)
print(json.dumps({"ok": ok, "attempts": attempts, "mapped": mapped}))
"""

# GET each URL in argv with a 2 s timeout; prints {url: parsed JSON body | "error: ..."}.
HTTP_PROBE = r"""
import json, sys, urllib.request

out = {}
for url in sys.argv[1:]:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            out[url] = json.loads(resp.read())
    except Exception as exc:
        out[url] = f"error: {type(exc).__name__}: {exc}"
print(json.dumps(out))
"""


class LabTurnServer(TurnServer):
    """coturn inside a lab namespace, on that node's TUN address; the log parsing is TurnServer's.

    It relays from that address and only to that address (every other peer address is denied), so a
    relayed packet can only go from one allocation to another on the same server.
    """

    def __init__(self, lab: Netlab, node: int, workdir: Path, *, user: str, password: str) -> None:
        super().__init__(workdir, user=user, password=password)
        self.lab, self.node, self.port = lab, node, TURN_PORT

    def url(self) -> str:
        return f"turn:{self.lab.addr(self.node)}:{self.port}"

    def start(self, timeout: float = 15.0) -> LabTurnServer:
        binary = shutil.which("turnserver")
        if binary is None:
            raise RuntimeError(MAKE_DEPS)
        self.workdir.mkdir(parents=True, exist_ok=True)
        ip = self.lab.addr(self.node)
        argv = [
            binary,
            "-n",
            f"--listening-ip={ip}",
            f"--relay-ip={ip}",
            f"--listening-port={self.port}",
            "--lt-cred-mech",
            f"--user={self.user}:{self.password}",
            f"--realm={self.realm}",
            "--denied-peer-ip=0.0.0.0-255.255.255.255",
            f"--allowed-peer-ip={ip}",
            "--no-cli",
            "--no-tls",
            "--no-dtls",
            "--no-rfc5780",
            f"--userdb={self.workdir / 'turndb'}",
            f"--pidfile={self.workdir / 'turnserver.pid'}",
            "--log-file=stdout",
            "--simple-log",
            "--verbose",
        ]
        with open(self.log_path, "wb") as log:
            self.proc = self.lab.run(self.node, argv, stdout=log, stderr=subprocess.STDOUT)
        # Ready once it answers STUN inside its own namespace (bounded by the probe's deadline).
        probe = stun(self.lab, self.node, ip, self.port, timeout)
        if not probe["ok"]:
            self.stop()
            raise RuntimeError(f"turnserver did not answer STUN on {ip}:{self.port}: {self.log_tail()}")
        return self


def stun(lab: Netlab, node: int, host: str, port: int, deadline_s: float) -> dict[str, Any]:
    out = lab.exec(node, [PY, "-c", STUN_PROBE, host, str(port), str(deadline_s)], timeout=deadline_s + 15)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def ping(lab: Netlab, src: int, dst: int) -> tuple[int, int]:
    """(sent, received) of 3 pings, each waited for at most 1 s."""
    out = lab.exec(src, ["ping", "-n", "-c", "3", "-i", "0.2", "-W", "1", lab.addr(dst)], timeout=20)
    counts = re.search(r"(\d+) packets transmitted, (\d+) received", out.stdout)
    assert counts, out.stdout + out.stderr
    return int(counts[1]), int(counts[2])


def udp_echoes(lab: Netlab, src: int, dst: int, port: int) -> int:
    """Datagrams of 20 sent from ``src`` that came back from a UDP echo server on ``dst``."""
    echo = lab.run(dst, [PY, UDPTOOL, "echo", str(port)], stdout=subprocess.PIPE, text=True)
    try:
        assert echo.stdout is not None
        ready, _, _ = select.select([echo.stdout], [], [], 10)
        assert ready and json.loads(echo.stdout.readline()) == {"ready": True}, "udp echo did not start"
        argv = [PY, UDPTOOL, "client", lab.addr(dst), str(port), "20", "0.01", "100", "1"]
        out = lab.exec(src, argv, timeout=30)
        assert out.returncode == 0, out.stderr
        return len(json.loads(out.stdout)["order"])
    finally:
        echo.kill()
        echo.wait(timeout=10)
        if echo.stdout is not None:
            echo.stdout.close()


def start_forwarder(lab: Netlab, log_path: Path) -> subprocess.Popen[str]:
    routes = [str(arg) for node in (A, B) for arg in (FORWARD_PORTS[node], lab.addr(node), NODE_PORT)]
    proc = lab.run(M, [PY, "-c", FORWARDER, str(log_path), *routes], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], 10)
    assert ready and json.loads(proc.stdout.readline()) == {"ready": True}, "forwarder did not start"
    return proc


def forwarded_connections(log_path: Path, node: int) -> int:
    if not log_path.exists():
        return 0
    return log_path.read_text().split().count(str(FORWARD_PORTS[node]))


def test_nodes_behind_separate_nats_link_and_gossip_through_turn(tmp_path: Path) -> None:
    for tool, package in (("turnserver", "coturn"), ("ping", "iputils-ping")):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is missing: run `make deps` (Debian package {package})")
    figures: dict[str, Any] = {}
    forwarder_log = tmp_path / "forwarder.log"
    with contextlib.ExitStack() as stack:
        lab = stack.enter_context(Netlab(3, links=NO_DIRECT_PATH, subnet=SUBNET, seed=11))
        a_ip, m_ip, b_ip = lab.addr(A), lab.addr(M), lab.addr(B)
        turn = LabTurnServer(lab, M, tmp_path / "coturn", user=USER, password=PASSWORD)
        stack.callback(turn.stop)
        turn.start()
        start_forwarder(lab, forwarder_log)

        # ---- the network: A and B cannot reach each other, both reach M ----------------------
        assert ping(lab, A, B) == (3, 0)
        assert ping(lab, B, A) == (3, 0)
        assert ping(lab, A, M) == (3, 3)
        assert ping(lab, B, M) == (3, 3)
        assert udp_echoes(lab, A, B, 9000) == 0
        assert udp_echoes(lab, B, A, 9000) == 0
        assert udp_echoes(lab, A, M, 9001) == 20
        assert udp_echoes(lab, B, M, 9002) == 20
        for node, ip in ((A, a_ip), (B, b_ip)):
            probe = stun(lab, node, m_ip, TURN_PORT, 10)
            assert probe["ok"], f"node {node} cannot reach the TURN server: {probe}"
            assert probe["mapped"] is not None and probe["mapped"].startswith(f"{ip}:"), probe

        # ---- two nodes, each published through its forwarder on M --------------------------
        ice = json.dumps(turn.ice_servers())
        flags = ["--ice-servers", ice, "--qos-interval", "1", "--probe-rate", "5"]
        nodes: dict[int, LabNode] = {}
        for index, name in ((A, "a"), (B, "b")):
            node = LabNode(lab, index, tmp_path / name, port=NODE_PORT, dial_allow=SUBNET, extra=flags)
            node.url = f"http://{m_ip}:{FORWARD_PORTS[index]}"  # its --public-url: the proxy on M
            stack.callback(node.close)
            nodes[index] = node
        start_all(list(nodes.values()))
        a, b = nodes[A], nodes[B]
        assert a.peer_id and b.peer_id

        # B's HTTP API is out of A's reach except through M.
        direct, via_m = f"http://{b_ip}:{NODE_PORT}/healthz", f"{b.url}/healthz"
        out = lab.exec(A, [PY, "-c", HTTP_PROBE, direct, via_m], timeout=30)
        reached = json.loads(out.stdout)
        assert isinstance(reached[direct], str) and reached[direct].startswith("error:"), reached
        assert isinstance(reached[via_m], dict) and reached[via_m]["peer_id"] == b.peer_id, reached

        # ---- the dial: signaling through M, media through the relay -------------------------
        before = lab.stats()["links"]
        allocations_before = turn.allocations()
        connections_before = forwarded_connections(forwarder_log, B)
        started = time.monotonic()
        dialled = a.api.post("/dial", json={"url": b.url}, timeout=60)
        figures["dial_s"] = time.monotonic() - started
        assert dialled.status_code == 200, f"{dialled.text}\nA: {a.log_tail()}\nB: {b.log_tail()}"
        body = dialled.json()
        assert body["state"] == "open" and body["peer_id"] == b.peer_id, body
        figures["setup_ms"] = body["setup_ms"]

        relayed_candidate = re.compile(rf"{re.escape(m_ip)}:(\d+) relay")
        relay_ports: dict[int, tuple[str, str]] = {}
        for node, peer in ((a, b), (b, a)):
            view = wait_for(
                lambda node=node, peer=peer: (v := node.link(peer.peer_id)) and v["state"] == "open" and v,
                15,
                0.2,
                f"an open link on node {node.index}",
            )
            for side in ("local", "remote"):
                match = relayed_candidate.fullmatch(view["ice"][side] or "")
                assert match, f"node {node.index}: not a relayed pair: {view['ice']}"
                assert int(match[1]) != TURN_PORT, view["ice"]  # an allocation, not the server port
            relay_ports[node.index] = (view["ice"]["local"], view["ice"]["remote"])
        # Each side's remote candidate is the other side's own allocation.
        assert relay_ports[A] == relay_ports[B][::-1], relay_ports
        assert turn.allocations() - allocations_before >= 2, turn.log_tail()
        assert turn.auth_failures() == 0, turn.log_tail()

        # Each node knows the other by its URL on M; the offer and its answer went through M.
        peers = {p["peer_id"]: p["url"] for p in a.api.get("/api/peers").json()["peers"]}
        assert peers.get(b.peer_id) == b.url, peers
        assert b.link(a.peer_id) is not None
        assert forwarded_connections(forwarder_log, B) > connections_before

        # ---- traffic over the relayed pair: probes answered, gossip delivered ---------------
        measured = wait_for(
            lambda: (v := a.link(b.peer_id)) and v["rtt_ms"] is not None and v, 20, 0.2, "RTT over TURN"
        )
        assert measured["rtt_ms"] > 0 and measured["loss_pct"] is not None
        published = a.api.post("/api/gossip", json={"topic": TOPIC, "payload": {"hello": "across NATs"}})
        assert published.status_code == 200, published.text
        message = wait_for(
            lambda: b.api.get("/api/gossip/messages", params={"topic": TOPIC}).json()["messages"],
            20,
            0.2,
            "the gossip message at B",
        )[0]
        assert message["id"] == published.json()["id"]
        assert message["origin"] == a.peer_id and message["payload"] == {"hello": "across NATs"}

        # The first window's RTT includes the link's start-up; the median of several is the figure.
        rtts = wait_for(
            lambda: (
                (r := [s["rtt_ms"] for s in a.samples(body["link_id"]) if s["rtt_ms"]]) and len(r) >= 4 and r
            ),
            20,
            0.2,
            "four RTT samples on A",
        )
        figures["rtt_ms"] = statistics.median(rtts)

        # ---- what crossed the emulator ------------------------------------------------------
        after = lab.stats()["links"]
        for src, dst in ((A, B), (B, A)):
            key = f"{src}>{dst}"
            assert after[key]["forwarded"] == 0, after[key]  # nothing ever passed directly
            # ICE tried the direct pair (both sides check it first); every check was dropped.
            assert after[key]["dropped_loss"] > before[key]["dropped_loss"], (before[key], after[key])
        for key in (f"{A}>{M}", f"{M}>{A}", f"{B}>{M}", f"{M}>{B}"):
            assert after[key]["forwarded"] > before[key]["forwarded"], (key, after[key])
        figures["direct_checks_dropped"] = sum(
            after[k]["dropped_loss"] - before[k]["dropped_loss"] for k in (f"{A}>{B}", f"{B}>{A}")
        )

        # ---- the relay's own account, once the nodes release their allocations ---------------
        a.close()
        b.close()
        relayed = wait_for(turn.relayed_packets, 20, 0.2, "coturn's usage lines for the closed sessions")
        assert relayed > 0
        figures["coturn_relayed_packets"] = relayed

    assert not set(lab.names) & set(list_namespaces()), "namespaces leaked"
    print(
        f"\nacross NATs via TURN: setup_ms {figures['setup_ms']:.0f} (POST /dial answered in "
        f"{figures['dial_s'] * 1000:.0f} ms), median RTT {figures['rtt_ms']:.2f} ms, "
        f"{figures['direct_checks_dropped']} direct packets dropped since the dial, "
        f"coturn relayed {figures['coturn_relayed_packets']} packets"
    )
