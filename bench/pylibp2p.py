"""py-libp2p side by side: its own virtualenv, its peer processes (bench/libp2p_peer.py), its mesh.

py-libp2p is a bench-only extra (``pyproject.toml``: ``bench``), never a dependency of f0mesh: its
pins (trio, protobuf, cryptography...) would fight f0mesh's, so it lives in bench/.libp2p-venv,
made on first use with the registry's pip. If that cannot be made, the reason is the evidence the
report shows, and the libp2p keys are recorded as not measured.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import threading
import time
import tomllib
from pathlib import Path
from typing import Any

from bench.common import REPO, cpu_seconds, rss_stable_kb

VENV = REPO / "bench" / ".libp2p-venv"
PYTHON = VENV / "bin" / "python"
PEER = REPO / "bench" / "libp2p_peer.py"
INSTALL_TIMEOUT_S = 900.0
READY_TIMEOUT_S = 120.0
CALL_TIMEOUT_S = 120.0
PUBLISH_GAP_S = 0.25  # as bench/mesh.py publishes into the f0mesh mesh
MESH_LINKS = 3  # each new node connects to this many earlier ones (never the hub past its 8)
HUB_LINKS = 8


def requirement() -> str:
    """The pin of the ``bench`` extra, so pyproject.toml is the one place it is written."""
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    return next(r for r in extras["bench"] if r.startswith("libp2p"))


def ensure_venv(say: Any) -> None:
    """Make bench/.libp2p-venv with py-libp2p unless it is there; raises RuntimeError with the
    installer's last lines when it cannot be made."""
    probe = [str(PYTHON), "-c", "import libp2p, trio"]
    if PYTHON.exists() and subprocess.run(probe, capture_output=True, timeout=120).returncode == 0:
        return
    want = requirement()
    say(f"making {VENV.relative_to(REPO)} with {want} (once; ~150 MB)")
    base = getattr(sys, "_base_executable", sys.executable)
    steps = [[base, "-m", "venv", "--clear", str(VENV)], [str(PYTHON), "-m", "pip", "install", "-q", want]]
    for argv in steps:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=INSTALL_TIMEOUT_S)
        if proc.returncode != 0:
            tail = " | ".join((proc.stderr or proc.stdout).strip().splitlines()[-3:])
            raise RuntimeError(f"py-libp2p could not be installed ({' '.join(argv[-2:])}): {tail}"[:300])


class Peer:
    """One bench/libp2p_peer.py process, driven by JSON lines; its replies are matched by id."""

    def __init__(self, name: str, workdir: Path) -> None:
        self.name = name
        self.log_path = workdir / f"{name}.log"
        with self.log_path.open("ab") as log:
            self.popen = subprocess.Popen(
                [str(PYTHON), str(PEER)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
                cwd=REPO,
            )
        self.addr = ""
        self.peer_id = ""
        self._replies: dict[Any, dict[str, Any]] = {}
        self._cond = threading.Condition()
        self._next = 0
        threading.Thread(target=self._read, daemon=True).start()

    @property
    def pid(self) -> int:
        return self.popen.pid

    def _read(self) -> None:
        assert self.popen.stdout is not None
        for line in self.popen.stdout:
            reply = json.loads(line)
            with self._cond:
                self._replies[reply.get("id", reply.get("event"))] = reply
                self._cond.notify_all()
        with self._cond:
            self._replies["eof"] = {"error": "the peer exited"}
            self._cond.notify_all()

    def wait(self, key: Any, timeout: float) -> dict[str, Any]:
        with self._cond:
            if not self._cond.wait_for(lambda: key in self._replies or "eof" in self._replies, timeout):
                raise TimeoutError(f"libp2p {self.name}: no answer to {key!r} within {timeout:.0f} s")
            reply = self._replies.pop(key, None) or self._replies["eof"]
        if "error" in reply:
            tail = self.log_path.read_text(errors="replace").strip().splitlines()[-3:]
            raise RuntimeError(f"libp2p {self.name}: {reply['error']} {' | '.join(tail)}"[:300])
        return reply

    def wait_ready(self, timeout: float = READY_TIMEOUT_S) -> None:
        reply = self.wait("ready", timeout)
        self.addr, self.peer_id = reply["addr"], reply["peer_id"]

    def send(self, cmd: str, **args: Any) -> int:
        self._next += 1
        assert self.popen.stdin is not None
        self.popen.stdin.write(json.dumps({"id": self._next, "cmd": cmd, **args}) + "\n")
        self.popen.stdin.flush()
        return self._next

    def call(self, cmd: str, timeout: float = CALL_TIMEOUT_S, **args: Any) -> dict[str, Any]:
        return self.wait(self.send(cmd, **args), timeout)

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.kill()
            self.popen.wait(timeout=10)


class Peers:
    """Processes started together and all killed on leaving the ``with`` block."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.peers: list[Peer] = []

    def __enter__(self) -> Peers:
        return self

    def __exit__(self, *exc: object) -> None:
        for peer in self.peers:
            peer.stop()

    def start(self, count: int) -> list[Peer]:
        new = [Peer(f"p{len(self.peers) + i}", self.workdir) for i in range(count)]
        self.peers += new
        for peer in new:
            peer.wait_ready()
        return new


def pair(peers: Peers) -> tuple[Peer, Peer]:
    """Two peers, connected, each with the other in its gossipsub mesh."""
    a, b = peers.start(2)
    a.call("connect", addr=b.addr)
    for peer in (a, b):
        if peer.call("wait_mesh", peers=1, within=30)["mesh"] < 1:
            raise RuntimeError("libp2p: the two peers never formed a gossipsub mesh")
    return a, b


def rate_round(a: Peer, b: Peer, count: int, size: int) -> tuple[float, float]:
    """(messages per second, per CPU-second of both processes): ``count`` signed publishes from a,
    timed from the first publish to b's delivery of the last (one host clock)."""
    cpu = cpu_seconds([a.pid, b.pid])
    expect = b.send("expect", count=count)
    time.sleep(0.05)  # b must be counting before the first message can arrive
    sent = a.call("publish", count=count, size=size)
    got = b.wait(expect, CALL_TIMEOUT_S + count / 50)
    cpu = cpu_seconds([a.pid, b.pid]) - cpu
    return count / (got["at"] - sent["t0"]), count / max(cpu, 0.01)


def setup_round(a: Peer, b: Peer) -> float:
    """Milliseconds of ``host.connect`` (TCP, multistream-select, Noise, yamux), then disconnect."""
    ms = float(a.call("connect", addr=b.addr)["setup_ms"])
    a.call("disconnect", peer_id=b.peer_id)
    time.sleep(0.2)
    return ms


def _quantile(values: list[float], q: float) -> float:
    xs = sorted(values)
    return xs[min(len(xs) - 1, max(0, round(q * (len(xs) - 1))))]


class Libp2pMesh:
    """A growing gossipsub mesh; peer 0 is the hub, linked to peers 1..8 and to no one else, so
    that its RSS is that of a node with 8 connections."""

    def __init__(self, peers: Peers, rng: random.Random) -> None:
        self.peers = peers
        self.rng = rng
        self.nodes: list[Peer] = []

    def grow(self, n: int) -> None:
        new = self.peers.start(n - len(self.nodes))
        for peer in new:
            i = len(self.nodes)
            if 1 <= i <= HUB_LINKS:
                self.nodes[0].call("connect", addr=peer.addr)
            others = list(range(1, i))
            for j in self.rng.sample(others, min(MESH_LINKS - (1 <= i <= HUB_LINKS), len(others))):
                peer.call("connect", addr=self.nodes[j].addr)
            self.nodes.append(peer)
        for peer in self.nodes:
            peer.call("wait_mesh", peers=1, within=30)
        time.sleep(2.0)  # two heartbeats: the mesh settles towards its degree

    def measure(self, messages: int) -> dict[str, Any]:
        n = len(self.nodes)
        published: list[tuple[str, float, int]] = []
        for _ in range(messages):
            i = self.rng.randrange(n)
            sent = self.nodes[i].call("publish", count=1, size=100, interval=0.001)["sent"]
            published += [(key, at, i) for key, at in sent]
            time.sleep(PUBLISH_GAP_S)
        time.sleep(2.0)
        after = [peer.call("receipts") for peer in self.nodes]
        spread, incomplete, duplicates = [], 0, 0
        for key, at, origin in published:
            seen = [
                r["first_seen"][key] for k, r in enumerate(after) if k != origin and key in r["first_seen"]
            ]
            if len(seen) < n - 1:
                incomplete += 1
            elif seen:
                spread.append((max(seen) - at) * 1000.0)
            duplicates += sum(max(0, r["copies"].get(key, 0) - 1) for r in after)
        if not spread:
            raise RuntimeError(f"libp2p N={n}: no message reached all nodes")
        return {
            "nodes": n,
            "messages": messages,
            "incomplete": incomplete,
            "last_delivery_ms_p50": round(_quantile(spread, 0.5), 2),
            "last_delivery_ms_p99": round(_quantile(spread, 0.99), 2),
            "last_delivery_ms": [round(x, 2) for x in spread],
            "duplicates_per_node_per_message": round(duplicates / (n * messages), 4),
        }

    def hub_rss_kb(self) -> float:
        return rss_stable_kb(self.nodes[0].pid)
