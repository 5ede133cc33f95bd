"""User-space link emulator between TUN devices in network namespaces (netlab's forwarder process).

This kernel has no netem, so delay, jitter, loss and rate are applied here: the emulator opens one TUN
device inside each namespace (setns(2), open /dev/net/tun, setns back: the fd keeps pointing into that
namespace), reads IPv4 packets, picks the destination TUN by destination address and writes the packet
there when the link model says it arrives. It is its own process so the tests' event loop and GC
cannot disturb its timing. Stdlib only: it is started as ``python emulator.py CONFIG.json``.

Link model, per direction (src -> dst), in the order netem applies it:
  loss      Bernoulli per packet with ``loss_pct``.
  rate      if ``rate_kbps``: packets are serialised one after another at that rate; at most
            ``queue_packets`` may wait, beyond that they are tail-dropped.
  delay     ``delay_ms`` plus jitter: uniform in [-jitter_ms, +jitter_ms], or normal with standard
            deviation ``jitter_ms`` clipped to +-3 sigma; never below zero.
  order     kept unless ``reorder``: a packet never overtakes the previous one on its direction, as on
            most real paths, so jitter larger than the packet spacing bunches packets instead.
Each direction has its own RNG seeded from (seed, src, dst), so one direction's traffic does not change
the other's random draws and a run is reproducible.

Control: JSON lines on stdin ``{"id", "cmd": "stats" | "set" | "stop", ...}``, one JSON reply line per
request on stdout. The first stdout line is ``{"ready": true}`` or ``{"error": ...}``. On stdin EOF,
"stop" or SIGTERM the counters go to ``stats_path`` and the process exits; the TUN devices vanish
with their fds.
"""

from __future__ import annotations

import ctypes
import fcntl
import heapq
import json
import os
import random
import select
import signal
import struct
import sys
import time
from collections import deque
from typing import Any

CLONE_NEWNET = 0x40000000
TUNSETIFF = 0x400454CA
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000
READ_BATCH = 256
# epoll rounds its timeout up to whole ms; waking up to half a ms early and delivering what is due
# within EARLY_S centres the delivery error on zero instead of adding ~0.5 ms to every hop.
EARLY_S = 0.0005

DEFAULT_SPEC: dict[str, Any] = {
    "delay_ms": 0.0,
    "jitter_ms": 0.0,
    "jitter_dist": "uniform",
    "loss_pct": 0.0,
    "rate_kbps": None,
    "queue_packets": 1000,
    "reorder": False,
}

_libc = ctypes.CDLL(None, use_errno=True)


class _Stop(Exception):
    pass


def _setns(fd: int) -> None:
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns: {os.strerror(err)}")


def open_tun(ns_path: str, ifname: str) -> int:
    """Create TUN ``ifname`` inside the namespace at ``ns_path``; return its fd, usable from here."""
    own = os.open("/proc/self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    target = os.open(ns_path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        _setns(target)
        try:
            fd = os.open("/dev/net/tun", os.O_RDWR | os.O_CLOEXEC)
            fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH22x", ifname.encode(), IFF_TUN | IFF_NO_PI))
        finally:
            # Staying in the wrong namespace would be worse than dying: a failure here propagates.
            _setns(own)
    finally:
        os.close(target)
        os.close(own)
    os.set_blocking(fd, False)
    return fd


class Direction:
    """One direction of one link: its impairments, its queue state and its counters."""

    def __init__(self, key: str, spec: dict[str, Any], seed: int) -> None:
        self.key = key
        self.rng = random.Random(f"{seed}:{key}")
        self.spec = dict(DEFAULT_SPEC)
        self.update(spec)
        self.busy_until = 0.0
        self.last_delivery = 0.0
        self.waiting: deque[float] = deque()  # serialisation end times of queued packets
        self.counters = {
            "packets_in": 0,
            "forwarded": 0,
            "bytes_forwarded": 0,
            "dropped_loss": 0,
            "dropped_queue": 0,
        }

    def update(self, spec: dict[str, Any]) -> None:
        unknown = set(spec) - set(DEFAULT_SPEC)
        if unknown:
            raise ValueError(f"unknown link parameters: {sorted(unknown)}")
        self.spec.update(spec)

    def _jitter_s(self) -> float:
        j = float(self.spec["jitter_ms"])
        if j <= 0:
            return 0.0
        if self.spec["jitter_dist"] == "normal":
            return max(-3 * j, min(3 * j, self.rng.gauss(0.0, j))) / 1000.0
        return self.rng.uniform(-j, j) / 1000.0

    def admit(self, size: int, now: float) -> float | None:
        """Delivery time for a packet entering now, or None if the link drops it."""
        self.counters["packets_in"] += 1
        if self.rng.random() * 100.0 < float(self.spec["loss_pct"]):
            self.counters["dropped_loss"] += 1
            return None
        depart = now
        rate = self.spec["rate_kbps"]
        if rate:
            while self.waiting and self.waiting[0] <= now:
                self.waiting.popleft()
            if len(self.waiting) >= int(self.spec["queue_packets"]):
                self.counters["dropped_queue"] += 1
                return None
            self.busy_until = max(now, self.busy_until) + size * 8 / (float(rate) * 1000.0)
            self.waiting.append(self.busy_until)
            depart = self.busy_until
        arrive = depart + max(0.0, float(self.spec["delay_ms"]) / 1000.0 + self._jitter_s())
        if not self.spec["reorder"]:
            arrive = max(arrive, self.last_delivery)
            self.last_delivery = arrive
        return arrive


class Emulator:
    def __init__(self, config: dict[str, Any]) -> None:
        self.nodes: list[dict[str, Any]] = config["nodes"]
        self.stats_path: str = config["stats_path"]
        self.fds: list[int] = []
        self.by_addr = {bytes(int(x) for x in n["addr"].split(".")): i for i, n in enumerate(self.nodes)}
        seed = int(config.get("seed", 0))
        links = config.get("links", {})
        default = config.get("default", {})
        self.dirs: dict[tuple[int, int], Direction] = {}
        for a in range(len(self.nodes)):
            for b in range(len(self.nodes)):
                if a != b:
                    key = f"{a}>{b}"
                    self.dirs[(a, b)] = Direction(key, {**default, **links.get(key, {})}, seed)
        self.unroutable = 0
        self.write_errors = 0
        self.heap: list[tuple[float, int, int, bytes, Direction]] = []
        self._tie = 0
        self._stdin_buf = b""

    def open(self) -> None:
        for node in self.nodes:
            self.fds.append(open_tun(f"/run/netns/{node['ns']}", node["ifname"]))

    def stats(self) -> dict[str, Any]:
        return {
            "links": {d.key: dict(d.counters) for d in self.dirs.values()},
            "unroutable": self.unroutable,
            "write_errors": self.write_errors,
            "in_flight": len(self.heap),
        }

    def write_stats(self) -> None:
        tmp = self.stats_path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(self.stats(), f)
        os.replace(tmp, self.stats_path)

    def _route(self, src: int, pkt: bytes, now: float) -> None:
        dst = self.by_addr.get(pkt[16:20]) if len(pkt) >= 20 and pkt[0] >> 4 == 4 else None
        if dst is None or dst == src:
            self.unroutable += 1
            return
        direction = self.dirs[(src, dst)]
        at = direction.admit(len(pkt), now)
        if at is not None:
            self._tie += 1
            heapq.heappush(self.heap, (at, self._tie, self.fds[dst], pkt, direction))

    def _deliver_due(self) -> None:
        due = time.monotonic() + EARLY_S
        while self.heap and self.heap[0][0] <= due:
            _, _, fd, pkt, direction = heapq.heappop(self.heap)
            try:
                os.write(fd, pkt)
            except OSError:
                self.write_errors += 1
                continue
            direction.counters["forwarded"] += 1
            direction.counters["bytes_forwarded"] += len(pkt)

    def _command(self, line: bytes) -> None:
        reply: dict[str, Any] = {"id": None, "ok": True}
        try:
            req = json.loads(line)
            reply["id"] = req.get("id")
            cmd = req.get("cmd")
            if cmd == "stats":
                reply["stats"] = self.stats()
            elif cmd == "set":
                self.dirs[(int(req["src"]), int(req["dst"]))].update(req["spec"])
            elif cmd == "stop":
                raise _Stop
            else:
                raise ValueError(f"unknown command {cmd!r}")
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            reply.update(ok=False, error=f"{type(exc).__name__}: {exc}")
        sys.stdout.write(json.dumps(reply) + "\n")
        sys.stdout.flush()

    def _read_stdin(self) -> None:
        data = os.read(0, 65536)
        if not data:
            raise _Stop
        self._stdin_buf += data
        while b"\n" in self._stdin_buf:
            line, self._stdin_buf = self._stdin_buf.split(b"\n", 1)
            if line.strip():
                self._command(line)

    def serve(self) -> None:
        ep = select.epoll()
        src_of = {fd: i for i, fd in enumerate(self.fds)}
        for fd in self.fds:
            ep.register(fd, select.EPOLLIN)
        ep.register(0, select.EPOLLIN)
        while True:
            timeout = max(0.0, self.heap[0][0] - EARLY_S - time.monotonic()) if self.heap else -1
            events = ep.poll(timeout)
            now = time.monotonic()
            for fd, _ in events:
                if fd == 0:
                    self._read_stdin()
                    continue
                for _ in range(READ_BATCH):
                    try:
                        pkt = os.read(fd, 65536)
                    except BlockingIOError:
                        break
                    self._route(src_of[fd], pkt, now)
            self._deliver_due()


def _on_sigterm(_sig: int, _frame: object) -> None:
    raise _Stop


def main(argv: list[str]) -> int:
    with open(argv[1]) as f:
        config = json.load(f)
    emu = Emulator(config)
    signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        emu.open()
    except (OSError, ValueError) as exc:
        sys.stdout.write(json.dumps({"error": f"cannot open TUN devices: {exc}"}) + "\n")
        sys.stdout.flush()
        return 2
    sys.stdout.write(json.dumps({"ready": True}) + "\n")
    sys.stdout.flush()
    try:
        emu.serve()
    except _Stop:
        pass
    finally:
        emu.write_stats()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
