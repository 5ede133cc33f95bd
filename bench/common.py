"""What every benchmark needs: child processes that always die, /proc readings, statistics."""

from __future__ import annotations

import os
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import httpx

from f0mesh import launch

TOKEN = "bench-admin-token-0123456789"
REPO = Path(__file__).resolve().parents[1]
READY_TIMEOUT_S = 120.0  # a start-up takes ~3 CPU-seconds; others share these 2 cores
STOP_GRACE_S = 3.0

T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_kb(pid: int) -> int:
    """VmRSS of a process in kB (KiB, as /proc reports it); psutil is not available here."""
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of processes: a cost that a busy neighbour stretches far less than wall time."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime: fields 14 and 15 of proc(5)
    return total / tick


def rss_stable_kb(
    pid: int, *, window: int = 6, interval: float = 0.2, tolerance_kb: int = 128, timeout: float = 15.0
) -> float:
    """Median RSS once ``window`` consecutive reads agree within ``tolerance_kb`` (or at ``timeout``):
    background work after a link opens (telemetry, trust scores, store writes) lands in bursts."""
    reads: list[int] = []
    deadline = time.monotonic() + timeout
    while True:
        reads.append(rss_kb(pid))
        tail = reads[-window:]
        if len(tail) == window and (max(tail) - min(tail) <= tolerance_kb or time.monotonic() > deadline):
            return float(statistics.median(tail))
        time.sleep(interval)


def wait_until(predicate: Callable[[], T], timeout: float, interval: float = 0.05, what: str = "") -> T:
    deadline = time.monotonic() + timeout
    last: T = predicate()
    while not last:
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what or predicate} ({last!r})")
        time.sleep(interval)
        last = predicate()
    return last


def summarize(values: list[float]) -> dict[str, float]:
    xs = sorted(values)
    q1, q3 = (statistics.quantiles(xs, n=4, method="inclusive")[::2]) if len(xs) > 1 else (xs[0], xs[0])
    return {"median": statistics.median(xs), "min": xs[0], "max": xs[-1], "q1": q1, "q3": q3}


def figure(
    f0mesh: list[float],
    baseline: list[float],
    *,
    unit: str,
    op: str,
    goal: float,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One results.json entry: ratio of medians, judged against ``ratio <op> goal``."""
    if not f0mesh or not baseline:
        raise ValueError("a figure needs at least one sample per side")
    mf, mb = statistics.median(f0mesh), statistics.median(baseline)
    if mb <= 0:
        raise ValueError(f"the baseline's median is {mb}: no ratio can be formed")
    ratio = mf / mb
    met = ratio <= goal if op == "<=" else ratio >= goal
    samples: dict[str, Any] = {
        "f0mesh": [round(x, 4) for x in f0mesh],
        "baseline": [round(x, 4) for x in baseline],
    }
    if len(f0mesh) == len(baseline) and all(b > 0 for b in baseline):
        # Each round ran both sides back to back, so a round's ratio shares that moment's noise.
        samples["round_ratios"] = [round(f / b, 4) for f, b in zip(f0mesh, baseline, strict=True)]
    for key, value in (extra or {}).items():
        samples[key] = (
            [round(x, 4) if isinstance(x, float) else x for x in value] if isinstance(value, list) else value
        )
    return {
        "f0mesh": round(mf, 4),
        "baseline": round(mb, 4),
        "ratio": round(ratio, 4),
        "goal": f"ratio {op} {goal:g}",
        "met": bool(met),
        "unit": unit,
        "repeats": min(len(f0mesh), len(baseline)),
        "samples": samples,
    }


class Proc:
    """One child process serving HTTP on a free loopback port, logging to a file."""

    def __init__(self, name: str, argv: list[str], workdir: Path, port: int) -> None:
        self.name = name
        self.argv = argv
        self.workdir = workdir
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.log_path = workdir / f"{name}.log"
        self.peer_id: str | None = None
        self.popen: subprocess.Popen[bytes] | None = None
        self.http = httpx.Client(base_url=self.url, timeout=60, headers={"Authorization": f"Bearer {TOKEN}"})

    @property
    def pid(self) -> int:
        assert self.popen is not None
        return self.popen.pid

    def start(self) -> Proc:
        self.popen = launch.spawn(self.argv, self.log_path, cwd=REPO)
        return self

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def poll_ready(self) -> bool:
        if not self.alive():
            raise RuntimeError(f"{self.name} exited early: {self.log_tail()}")
        try:
            self.peer_id = self.http.get("/healthz", timeout=1).json()["peer_id"]
        except (httpx.HTTPError, ValueError, KeyError):
            return False
        return True

    def log_tail(self, n: int = 25) -> str:
        return launch.log_tail(self.log_path, n)

    def post(self, path: str, body: dict[str, Any], timeout: float = 60) -> dict[str, Any]:
        r = self.http.post(path, json=body, timeout=timeout)
        if r.status_code != 200:
            raise RuntimeError(f"{self.name} POST {path}: HTTP {r.status_code}: {r.text[:300]}")
        return r.json()

    def get(self, path: str) -> dict[str, Any]:
        r = self.http.get(path, timeout=10)
        r.raise_for_status()
        return r.json()

    def kill(self) -> None:
        if self.alive():
            assert self.popen is not None
            self.popen.send_signal(signal.SIGKILL)
            self.popen.wait(timeout=10)


class Procs:
    """A group of processes started together; leaving the ``with`` block kills every one of them."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.procs: list[Proc] = []

    def __enter__(self) -> Procs:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_all()

    def _add(self, name: str, argv: list[str], port: int) -> Proc:
        proc = Proc(name, argv, self.workdir, port)
        self.procs.append(proc)
        return proc.start()

    def f0mesh_up(
        self, name: str, flags: dict[str, Any] | None = None, *, profile: str | None = None
    ) -> Proc:
        """A real ``f0mesh up`` process, as a user runs it."""
        port = free_port()
        given = {"--admin-token": TOKEN, "--log-level": "warning", **(flags or {})}
        argv = launch.up_argv(self.workdir / name, port=port, profile=profile, flags=given)
        return self._add(name, argv, port)

    def node_peer(self, name: str) -> Proc:
        """An f0mesh Node with the bench traffic routes (bench/node_peer.py)."""
        port = free_port()
        argv = [sys.executable, "-m", "bench.node_peer", "--data-dir", str(self.workdir / name)]
        return self._add(name, [*argv, "--port", str(port), "--admin-token", TOKEN], port)

    def raw_peer(self, name: str) -> Proc:
        """A plain-aiortc baseline peer (bench/raw_peer.py)."""
        port = free_port()
        return self._add(name, [sys.executable, "-m", "bench.raw_peer", "serve", "--port", str(port)], port)

    def wait_ready(self, timeout: float = READY_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout
        pending = [p for p in self.procs if p.peer_id is None and p.alive()]
        while pending:
            pending = [p for p in pending if not p.poll_ready()]
            if pending and time.monotonic() > deadline:
                names = ", ".join(p.name for p in pending)
                raise TimeoutError(f"not ready after {timeout:.0f} s: {names}\n{pending[0].log_tail()}")
            if pending:
                time.sleep(0.1)

    def stop_all(self) -> None:
        """SIGTERM everyone at once, SIGKILL whoever is still there after a short grace."""
        launch.stop([proc.popen for proc in self.procs if proc.popen is not None], STOP_GRACE_S)
        for proc in self.procs:
            proc.http.close()
