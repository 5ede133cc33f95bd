"""Load (issue 13, item 4): a node publishing at its measured limit, and past it.

The issue asks for five minutes at the limit; this test holds 30 s (``SUSTAIN_S``) to stay inside the
suite's time budget (the memory bound is absolute, not a growth rate, so it holds for any length),
and ``F0MESH_LOAD_SUSTAIN_S=300`` runs the five minutes. The figures it prints (RSS over time,
/healthz latency percentiles, rates) are for the note; the assertions are about bounds and losses,
never about how fast anything was.

The node publishes through its API (``POST /api/gossip``, each answered once the message is committed)
with one linked neighbour, so every message is also pushed and acknowledged over a real link.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import os
import re
import sqlite3
import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from nodes import TOKEN, NodeProcess, rss_kib, start_all

AUTH = {"Authorization": f"Bearer {TOKEN}"}
MEASURE_S = 8.0
SUSTAIN_S = float(os.environ.get("F0MESH_LOAD_SUSTAIN_S", "30"))
OVERLOAD_S = 10.0
FLOOD_WORKERS = 256
PAD = "p" * 200


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


class Monitor:
    """Samples the node's RSS every second and /healthz latency every 0.25 s, in a thread."""

    def __init__(self, node: NodeProcess) -> None:
        self.node = node
        self.rss: list[tuple[float, int]] = []
        self.health_ms: list[float] = []
        self.health_failures: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._t0 = time.monotonic()

    def __enter__(self) -> Monitor:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        last_rss = 0.0
        with httpx.Client(base_url=self.node.url, timeout=30) as client:
            while not self._stop.wait(0.25):
                now = time.monotonic()
                if now - last_rss >= 1.0:
                    last_rss = now
                    self.rss.append((now - self._t0, rss_kib(self.node.proc.pid)))
                t = time.perf_counter()
                try:
                    r = client.get("/healthz")
                    ok = r.status_code == 200 and r.json()["status"] == "ok"
                except httpx.HTTPError as exc:
                    ok, r = False, exc
                if ok:
                    self.health_ms.append((time.perf_counter() - t) * 1000)
                else:
                    self.health_failures.append(repr(r)[:100])

    def report(self, label: str) -> str:
        rss = [kib for _, kib in self.rss]
        every10 = [f"{t:.0f}s:{kib // 1024}" for t, kib in self.rss[:: max(1, len(self.rss) // 12)]]
        return (
            f"{label}: RSS MiB over time [{' '.join(every10)}] "
            f"(min {min(rss) // 1024}, max {max(rss) // 1024}); "
            f"/healthz p50 {_pct(self.health_ms, 0.5):.1f} ms, p99 {_pct(self.health_ms, 0.99):.1f} ms, "
            f"max {max(self.health_ms):.1f} ms over {len(self.health_ms)} probes, "
            f"{len(self.health_failures)} failed"
        )


def _publishers(node: NodeProcess, threads: int, duration: float, rate: float | None, tag: str):
    """``threads`` closed-loop publishers for ``duration`` s; with ``rate``, paced to that total rate."""
    acked: list[str] = []
    statuses: collections.Counter[int] = collections.Counter()
    lock = threading.Lock()
    deadline = time.monotonic() + duration

    def run(t: int) -> None:
        period = threads / rate if rate else 0.0
        due = time.monotonic()
        n = 0
        with httpx.Client(base_url=node.url, timeout=60, headers=AUTH) as client:
            while time.monotonic() < deadline:
                if period:
                    due += period
                    delay = due - time.monotonic()
                    if delay > 0:
                        time.sleep(delay)
                r = client.post(
                    "/api/gossip", json={"topic": "load", "payload": {"tag": tag, "t": t, "n": n, "pad": PAD}}
                )
                n += 1
                with lock:
                    statuses[r.status_code] += 1
                    if r.status_code == 200:
                        acked.append(r.json()["id"])

    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        for f in [pool.submit(run, t) for t in range(threads)]:
            f.result(timeout=duration + 120)
    return acked, statuses


def _stored(node: NodeProcess, ids: list[str]) -> set[str]:
    with sqlite3.connect(node.data_dir / "mesh.db") as db:
        rows = db.execute(
            "SELECT id FROM gossip_messages WHERE owner = ? AND topic = 'load'", (node.peer_id,)
        ).fetchall()
    return {r[0] for r in rows} & set(ids)


def _measure_limit(node: NodeProcess) -> float:
    t0 = time.monotonic()
    acked, statuses = _publishers(node, 8, MEASURE_S, None, "measure")
    rate = len(acked) / (time.monotonic() - t0)
    print(f"measured limit: {rate:.0f} publishes/s with 8 closed-loop clients ({dict(statuses)})")
    assert statuses[200] == len(acked) > 0
    return rate


@pytest.fixture(scope="module")
def loaded_pair(tmp_path_factory) -> Iterator[tuple[NodeProcess, NodeProcess, float]]:
    """The publishing node, its linked neighbour and the node's measured limit, for both tests: each
    reads memory, statuses and counters from its own start, and only acknowledged ids it got itself."""
    root = tmp_path_factory.mktemp("load")
    node, peer = NodeProcess(root / "load"), NodeProcess(root / "peer")
    try:
        start_all([node, peer])
        assert node.dial(peer).status_code == 200
        yield node, peer, _measure_limit(node)
    finally:
        node.close()
        peer.close()


@pytest.mark.timeout(SUSTAIN_S + 240)  # start-up, the measurement and the checks: 270 s at the default
def test_sustained_publishing_at_the_limit_keeps_memory_bounded_and_loses_nothing(loaded_pair) -> None:
    node, peer, limit = loaded_pair
    target = 0.9 * limit
    with Monitor(node) as monitor:
        start_rss = rss_kib(node.proc.pid)
        t0 = time.monotonic()
        acked, statuses = _publishers(node, 8, SUSTAIN_S, target, "sustain")
        achieved = len(acked) / (time.monotonic() - t0)
    print(monitor.report(f"{SUSTAIN_S:.0f} s at {target:.0f}/s (achieved {achieved:.0f}/s)"))
    print(f"statuses {dict(statuses)}; RSS at the start {start_rss // 1024} MiB")
    print(f"accepted {statuses[200]}, refused {statuses[429]}")
    assert not monitor.health_failures, monitor.health_failures[:5]
    assert len(monitor.health_ms) > SUSTAIN_S  # /healthz kept answering all along
    # Nothing it accepted is lost: every 200 is in the store (and, for the neighbour, on its way).
    stored = _stored(node, acked)
    assert len(stored) == len(acked), f"{len(acked) - len(stored)} acknowledged messages not stored"
    assert set(statuses) <= {200, 429}, statuses
    # Memory within a bound: the working set of the run, not a queue growing with every message.
    peak = max(kib for _, kib in monitor.rss)
    assert peak - start_rss < 256 * 1024, (start_rss, peak)
    assert node.http.get("/healthz").json()["status"] == "ok"
    assert peer.http.get("/healthz").json()["status"] == "ok"


async def _flood(url: str, workers: int, duration: float) -> dict:
    """``workers`` clients publishing back to back, far more than the node answers at its limit."""
    statuses: collections.Counter[int | str] = collections.Counter()
    acked: list[str] = []
    latencies: list[float] = []
    limits = httpx.Limits(max_connections=workers, max_keepalive_connections=workers)
    deadline = time.monotonic() + duration
    async with httpx.AsyncClient(base_url=url, headers=AUTH, timeout=60, limits=limits) as client:

        async def worker(w: int) -> None:
            n = 0
            while time.monotonic() < deadline:
                t = time.perf_counter()
                try:
                    r = await client.post("/api/gossip", json={"topic": "load", "payload": {"w": w, "n": n}})
                except httpx.HTTPError as exc:
                    statuses[type(exc).__name__] += 1
                    continue
                n += 1
                statuses[r.status_code] += 1
                latencies.append(time.perf_counter() - t)
                if r.status_code == 200:
                    acked.append(r.json()["id"])

        await asyncio.gather(*(worker(w) for w in range(workers)))
    return {"statuses": statuses, "acked": acked, "latencies": latencies}


def _overloaded(node: NodeProcess) -> float:
    """The node's count of publishes refused as overload (429), from /metrics."""
    metrics = node.http.get("/metrics").text
    counted = re.search(r"^f0mesh_gossip_publish_overloaded_total (\S+)$", metrics, re.MULTILINE)
    assert counted is not None, "no f0mesh_gossip_publish_overloaded_total in /metrics"
    return float(counted.group(1))


def test_past_the_limit_load_is_shed_visibly(loaded_pair) -> None:
    """32 times the closed-loop clients that saturate it: a node that sheds load refuses some (429, counted
    in /metrics); one that does not holds every request and answers each later and later."""
    node, _peer, limit = loaded_pair
    before = _overloaded(node)
    with Monitor(node) as monitor:
        start_rss = rss_kib(node.proc.pid)
        t0 = time.monotonic()
        result = asyncio.run(_flood(node.url, FLOOD_WORKERS, OVERLOAD_S))
        elapsed = time.monotonic() - t0
    lat = result["latencies"]
    print(monitor.report(f"{OVERLOAD_S:.0f} s of {FLOOD_WORKERS} back-to-back publishers"))
    print(
        f"statuses {dict(result['statuses'])} in {elapsed:.0f} s ({len(result['acked']) / elapsed:.0f}/s "
        f"accepted, limit {limit:.0f}/s); publish latency p50 {_pct(lat, 0.5) * 1000:.0f} ms, "
        f"p99 {_pct(lat, 0.99) * 1000:.0f} ms; RSS at the start {start_rss // 1024} MiB"
    )
    assert not monitor.health_failures, monitor.health_failures[:5]
    assert node.http.get("/healthz").json()["status"] == "ok"
    stored = _stored(node, result["acked"])
    assert len(stored) == len(result["acked"]), "an acknowledged message was lost under overload"
    refused = result["statuses"][429]
    counted = _overloaded(node) - before
    print(f"429 answers: {refused}; counted in /metrics: {counted:.0f}")
    assert refused > 0, "past its limit the node refused nothing: it queued every request"
    assert counted >= refused, "the refusals are not in /metrics"
