"""The benchmarks. Each returns results.json entries; f0mesh and baseline repeats are interleaved
(alternating which goes first) so that a noisy neighbour hurts both sides alike.
"""

from __future__ import annotations

import concurrent.futures
import json
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench import libdatachannel_spike, pylibp2p, validation
from bench.common import REPO, Proc, Procs, cpu_seconds, figure, rss_stable_kb, wait_until
from bench.mesh import Mesh, measure_n

MIB = 1024 * 1024
POLL_S = 0.05
# Degree manager off: the nodes must not dial each other behind the benchmark's back.
NO_AUTODIAL = {"--d-lo": 0, "--d": 0}
# f0mesh publishes telemetry 1 s after a burst of link changes; RSS is read after it has landed.
SETTLE_S = 2.0
# A node refreshes trust scores every 5 s; the first refresh imports networkx and scipy (~30 MB),
# linked or not. The hub's "before" reading waits until two refreshes have passed.
F0MESH_WARM_S = 11.0
BENCH_TOPIC = "bench.gossip"  # what bench/node_peer.py publishes on, with a 100-character string
BENCH_PAYLOAD = "ab" * 50


@dataclass
class Plan:
    quick: bool
    repeats: int | None
    workdir: Path
    say: Callable[[str], None]
    # keys a suite could not measure while its other keys were measured: key -> why
    failed: dict[str, str] = field(default_factory=dict)

    def n(self, quick: int, full: int) -> int:
        return self.repeats or (quick if self.quick else full)


class _Retrying:
    """Runs a round again when it fails (e.g. a dial refused with 502 under load), keeping the reasons.

    A failed round says something about reliability, not about speed: it is reported, not averaged in.
    More than ``limit`` failures in one benchmark end it with the last error.
    """

    def __init__(self, run: Callable[[int], None], cleanup: Callable[[], None], limit: int = 3) -> None:
        self.run = run
        self.cleanup = cleanup
        self.limit = limit
        self.failures: list[str] = []

    def __call__(self, i: int) -> None:
        while True:
            try:
                self.run(i)
                return
            except (RuntimeError, TimeoutError, httpx.HTTPError) as exc:
                self.failures.append(str(exc)[:300])
                if len(self.failures) > self.limit:
                    raise
                self.cleanup()


def _ordered(i: int, first: Callable[[int], None], second: Callable[[int], None]) -> None:
    """Run round ``i`` of both sides, the first side first in even rounds and second in odd ones."""
    for step in (first, second) if i % 2 == 0 else (second, first):
        step(i)


# -- setup ---------------------------------------------------------------------------------


def _link(node: Proc, peer_id: str) -> dict[str, Any] | None:
    for link in node.get("/api/mesh-rtc/links")["links"]:
        if link["peer_id"] == peer_id:
            return link
    return None


def _link_state(node: Proc, peer_id: str) -> str | None:
    link = _link(node, peer_id)
    return link["state"] if link else None


def _dial_and_close(
    a: Proc, b: Proc, dial: dict[str, Any], peer_failed: list[str]
) -> tuple[float, dict[str, Any]]:
    """One timed ``POST /dial`` from ``a`` to ``b``, then an operator's close that both sides see:
    (client wall ms, the /dial reply). A close ``b`` saw as failed is undone on ``b`` (its reason
    kept in ``peer_failed``) so the next round dials afresh."""
    assert b.peer_id
    t0 = time.perf_counter()
    body = a.post("/dial", dial)
    wall = (time.perf_counter() - t0) * 1000.0
    assert body["state"] == "open", body
    mine = _link(a, b.peer_id)
    if mine is None or mine["link_id"] != body["link_id"] or mine["direction"] != "out":
        raise RuntimeError(f"POST /dial returned a link it did not dial: {body} / {mine}")
    r = a.http.delete(f"/api/mesh-rtc/links/{b.peer_id}")
    assert r.status_code == 200, r.text
    wait_until(lambda: _link_state(b, a.peer_id) in ("closed", "failed"), 10, what=f"{b.name} sees the close")
    theirs = _link(b, a.peer_id) or {}
    if theirs.get("state") == "failed":
        # b missed the final "bye" and will redial a within ~1 s; an operator's DELETE on b
        # (answered 404: nothing live) cancels that. The DELETE also makes b refuse a's offers
        # until b dials a; unblocking a on b lifts that hold, so the next round dials afresh.
        peer_failed.append(str(theirs.get("reason")))
        b.http.delete(f"/api/mesh-rtc/links/{a.peer_id}")
        b.http.delete(f"/api/peers/{a.peer_id}/block")
    return wall, {**body, "signaling": mine.get("signaling")}


def _unlink(x: Proc, y: Proc) -> None:
    """Close any link between two nodes and lift the holds the closes set (a failed round's cleanup)."""
    for one, other in ((x, y), (y, x)):
        one.http.delete(f"/api/mesh-rtc/links/{other.peer_id}")
        one.http.delete(f"/api/peers/{other.peer_id}/block")


def bench_setup(plan: Plan, keys: set[str]) -> dict[str, Any]:
    """Also `libp2p_setup` when asked: py-libp2p's ``host.connect`` in the same rounds, next to the
    f0mesh dialler's own ``setup_ms`` (both in-process, without HTTP to a client). And `relayed_dial`:
    afterwards the same dialler reaches a private node through the other node, which saves the
    start-up of two processes; if it fails, the setup figures still stand."""
    n = plan.n(5, 20)
    f0_wall: list[float] = []
    f0_api: list[float] = []
    base_wall: list[float] = []
    base_inproc: list[float] = []
    p2p_ms: list[float] = []
    with Procs(plan.workdir / "setup") as procs, pylibp2p.Peers(plan.workdir / "setup-libp2p") as peers:
        a, b = procs.f0mesh_up("a", NO_AUTODIAL), procs.f0mesh_up("b", NO_AUTODIAL)
        ra, rb = procs.raw_peer("ra"), procs.raw_peer("rb")
        relayed = "relayed_dial" in keys
        if relayed:
            private = procs.f0mesh_up("private", {**NO_AUTODIAL, "--no-public-url": True})
            public = procs.f0mesh_up("public", NO_AUTODIAL)
        procs.wait_ready()
        assert a.peer_id and b.peer_id

        peer_failed: list[str] = []

        def f0mesh_cycle(i: int) -> None:
            wall, body = _dial_and_close(a, b, {"url": b.url}, peer_failed)
            if i > 0:
                f0_wall.append(wall)
                f0_api.append(float(body["setup_ms"]))

        def raw_cycle(i: int) -> None:
            t0 = time.perf_counter()
            body = ra.post("/connect", {"url": rb.url})
            wall = (time.perf_counter() - t0) * 1000.0
            ra.post("/close", {"conn_id": body["conn_id"]})
            wait_until(
                lambda: all(c["ctl"] == "closed" for c in rb.get("/stats")["conns"].values()),
                10,
                what="rb sees the close",
            )
            if i > 0:
                base_wall.append(wall)
                base_inproc.append(float(body["setup_ms"]))

        def f0mesh_cleanup() -> None:
            _unlink(a, b)
            time.sleep(1.0)

        def raw_cleanup() -> None:
            for conn_id in list(ra.get("/stats")["conns"]):
                ra.post("/close", {"conn_id": conn_id})
            time.sleep(1.0)

        f0_round, raw_round = _Retrying(f0mesh_cycle, f0mesh_cleanup), _Retrying(raw_cycle, raw_cleanup)
        p2p_pair = None
        if "libp2p_setup" in keys:
            pylibp2p.ensure_venv(plan.say)
            p2p_pair = peers.start(2)
        for i in range(n + 1):  # round 0 warms both sides up and is not recorded
            _ordered(i, f0_round, raw_round)
            if p2p_pair is not None:
                ms = pylibp2p.setup_round(*p2p_pair)
                if i > 0:
                    p2p_ms.append(ms)
            time.sleep(0.1)
        f0_med, base_med = statistics.median(f0_wall), statistics.median(base_wall)
        plan.say(f"setup: f0mesh {f0_med:.1f} ms, baseline {base_med:.1f} ms")
        out = {}
        if relayed:
            try:
                out["relayed_dial"] = _relayed_dial(plan, a, b, private, public)
            except Exception as exc:  # reported under "Not measured" by __main__
                plan.failed["relayed_dial"] = f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
    if p2p_ms:
        out["libp2p_setup"] = reported(
            f0_api,
            p2p_ms,
            unit="ms",
            extra={"transport": "tcp (Noise, yamux)", "f0mesh_client_wall_ms": f0_wall},
        )
        plan.say(
            f"libp2p_setup: f0mesh {statistics.median(f0_api):.1f} ms, "
            f"py-libp2p {statistics.median(p2p_ms):.1f} ms"
        )
    return out | {
        "setup": figure(
            f0_wall,
            base_wall,
            unit="ms",
            op="<=",
            goal=1.5,
            extra={
                "f0mesh_api_setup_ms": f0_api,
                "baseline_inprocess_setup_ms": base_inproc,
                "f0mesh_peer_saw_failed": len(peer_failed),
                "f0mesh_peer_failed_reasons": sorted(set(peer_failed)),
                "f0mesh_cycles": n + 1,
                "f0mesh_failed_rounds": f0_round.failures,
                "baseline_failed_rounds": raw_round.failures,
            },
        )
    }


# -- dialling a private node through a relay -----------------------------------------------


def _relayed_dial(plan: Plan, dialler: Proc, relay: Proc, private: Proc, public: Proc) -> dict[str, Any]:
    """A private node dialled by PeerId through a common neighbour (signaling over ``ctl``) against a
    public node dialled by PeerId over HTTP signaling, from the same dialler, rounds interleaved."""
    n = plan.n(3, 10)
    mesh_wall: list[float] = []
    http_wall: list[float] = []
    mesh_api: list[float] = []
    http_api: list[float] = []
    peer_failed: list[str] = []
    for node in (dialler, private):
        node.post("/dial", {"url": relay.url})
    dialler.post("/api/peers", {"url": public.url})
    wait_until(
        lambda: any(p["peer_id"] == private.peer_id for p in dialler.get("/api/peers")["peers"]),
        30,
        what="the dialler learns the private node from the mesh",
    )

    def cycle(target: Proc, signaling: str, wall: list[float], api: list[float]) -> _Retrying:
        def run(i: int) -> None:
            ms, body = _dial_and_close(dialler, target, {"peer_id": target.peer_id}, peer_failed)
            if body["signaling"] != signaling:
                raise RuntimeError(f"dial of {target.name} used {body['signaling']} signaling")
            if i > 0:
                wall.append(ms)
                api.append(float(body["setup_ms"]))

        def cleanup() -> None:
            _unlink(dialler, target)
            time.sleep(1.0)

        return _Retrying(run, cleanup)

    mesh_round = cycle(private, "mesh", mesh_wall, mesh_api)
    http_round = cycle(public, "http", http_wall, http_api)
    for i in range(n + 1):  # round 0 warms both sides up and is not recorded
        _ordered(i, mesh_round, http_round)
    fig = figure(
        mesh_wall,
        http_wall,
        unit="ms",
        op="<=",
        goal=1.5,
        extra={
            "f0mesh_api_setup_ms": mesh_api,
            "baseline_api_setup_ms": http_api,
            "f0mesh_peer_saw_failed": len(peer_failed),
            "f0mesh_failed_rounds": mesh_round.failures,
            "baseline_failed_rounds": http_round.failures,
        },
    )
    plan.say(f"relayed_dial: mesh {fig['f0mesh']:.1f} ms, http {fig['baseline']:.1f} ms")
    return fig


# -- throughput and message rate -----------------------------------------------------------


def udp_rcvbuf_errors() -> int:
    """Datagrams this network namespace dropped because a receiver's socket buffer was full."""
    with open("/proc/net/snmp") as fh:
        rows = [line.split() for line in fh if line.startswith("Udp:")]
    return int(dict(zip(rows[0][1:], rows[1][1:], strict=True))["RcvbufErrors"])


class _Series:
    """Samples of one side, with the CPU time its two processes spent and the UDP drops seen meanwhile."""

    def __init__(self, run: Callable[[], float], scale: float, pids: list[int]) -> None:
        self.run = run
        self.scale = scale
        self.pids = pids
        self.values: list[float] = []
        self.per_cpu_s: list[float] = []
        self.drops: list[float] = []

    def __call__(self, _round: int) -> None:
        drops, cpu = udp_rcvbuf_errors(), cpu_seconds(self.pids)
        elapsed = self.run()
        cpu = cpu_seconds(self.pids) - cpu
        self.drops.append(float(udp_rcvbuf_errors() - drops))
        self.values.append(self.scale / elapsed)
        self.per_cpu_s.append(self.scale / max(cpu, 0.01))  # /proc counts in 10 ms ticks


def bench_traffic(plan: Plan, keys: set[str]) -> dict[str, Any]:
    """Throughput and message rate share one pair of f0mesh nodes and one pair of raw peers.

    After the recorded message_rate rounds, one more f0mesh round runs under a sampling profiler
    in both processes (not recorded: the profiler slows it), for the profile in RESULTS.md."""
    n = plan.n(2, 5)
    total_bytes = (16 if plan.quick else 64) * MIB
    messages = 4_000 if plan.quick else 10_000
    out: dict[str, Any] = {}
    p2p_messages = 500 if plan.quick else 3_000  # py-libp2p moves a few hundred a second here
    p2p_rates: list[float] = []
    p2p_per_cpu: list[float] = []
    with Procs(plan.workdir / "traffic") as procs, pylibp2p.Peers(plan.workdir / "traffic-libp2p") as peers:
        na, nb = procs.node_peer("na"), procs.node_peer("nb")
        ra, rb = procs.raw_peer("ra"), procs.raw_peer("rb")
        procs.wait_ready()
        p2p_pair = None
        if "libp2p_message_rate" in keys:
            pylibp2p.ensure_venv(plan.say)
            p2p_pair = pylibp2p.pair(peers)
        na.post("/dial", {"url": nb.url})
        conn_id = ra.post("/connect", {"url": rb.url})["conn_id"]
        f0_pids, raw_pids = [na.pid, nb.pid], [ra.pid, rb.pid]

        def f0(kind: str, total: int, size: int) -> float:
            body = {"peer": nb.peer_id, "kind": kind, "total": total, "size": size}
            return na.post("/bench/send", body, timeout=600)["elapsed_s"]

        def raw(kind: str, total: int, size: int) -> float:
            body = {"peer": conn_id, "kind": kind, "total": total, "size": size}
            return ra.post("/bench/send", body, timeout=600)["elapsed_s"]

        # Warm-up, not recorded: first-use costs (allocations, code paths) on both sides.
        f0("bytes", 2 * MIB, MIB)
        raw("bytes", 2 * MIB, 16 * 1024)
        f0("gossip", 500, 100)
        if "message_rate_crypto" in keys:
            f0("gossip_batch", 500, 100)
        raw("msgs", 2000, 100)

        def measure(
            key: str, f0_side: Callable[[int], None], f0: _Series, base_side: _Series, **spec: Any
        ) -> None:
            for i in range(n):
                _ordered(i, f0_side, base_side)
            fig = figure(
                f0.values,
                base_side.values,
                extra={
                    **spec.pop("extra"),
                    "per_cpu_second_f0mesh": f0.per_cpu_s,
                    "per_cpu_second_baseline": base_side.per_cpu_s,
                    "udp_rcvbuf_errors_f0mesh": f0.drops,
                    "udp_rcvbuf_errors_baseline": base_side.drops,
                },
                **spec,
            )
            plan.say(f"{key}: f0mesh {fig['f0mesh']:.2f}, baseline {fig['baseline']:.2f} {fig['unit']}")
            out[key] = fig

        if "throughput" in keys:
            bulk = _Series(lambda: f0("bytes", total_bytes, MIB), total_bytes / 1e6, f0_pids)
            measure(
                "throughput",
                bulk,
                bulk,
                _Series(lambda: raw("bytes", total_bytes, 16 * 1024), total_bytes / 1e6, raw_pids),
                unit="MB/s",
                op=">=",
                goal=0.9,
                extra={"payload_bytes": total_bytes},
            )
        if keys & {"message_rate", "message_rate_crypto", "libp2p_message_rate"}:
            # One series serves both keys; each f0mesh round is followed by the crypto floor, measured
            # in this process while the nodes idle, so both see the same moment's machine.
            gossip = _Series(lambda: f0("gossip", messages, 100), messages, f0_pids)
            # the same envelopes through Node.publish_many: one call and commit wait per batch, still
            # one signature per envelope (reported next to the per-publish figure, which is the key's)
            batched = _Series(lambda: f0("gossip_batch", messages, 100), messages, f0_pids)
            floor: list[float] = []

            def gossip_then_floor(i: int) -> None:
                gossip(i)
                floor.append(validation.crypto_floor(messages, BENCH_PAYLOAD, BENCH_TOPIC))
                if "message_rate_crypto" in keys:
                    batched(i)
                if p2p_pair is not None and "libp2p_message_rate" not in plan.failed:
                    # py-libp2p failing (a peer that stops answering) must not cost f0mesh's figures
                    try:
                        if i == 0:
                            pylibp2p.rate_round(*p2p_pair, 200, 100)  # warm-up, not recorded
                        rate, per_cpu = pylibp2p.rate_round(*p2p_pair, p2p_messages, 100)
                    except (TimeoutError, RuntimeError) as exc:
                        plan.failed["libp2p_message_rate"] = f"{type(exc).__name__}: {exc}"[:300]
                        plan.say(f"libp2p_message_rate not measured: {exc}")
                        p2p_rates.clear()
                    else:
                        p2p_rates.append(rate)
                        p2p_per_cpu.append(per_cpu)

            measure(
                "message_rate",
                gossip_then_floor,
                gossip,
                _Series(lambda: raw("msgs", messages, 100), messages, raw_pids),
                unit="msgs/s",
                op=">=",
                goal=2.0,
                extra={"messages": messages},
            )
            # Unsigned aiortc messages are not the same work: kept as a figure, the goal is the floor's.
            out["message_rate"].update(goal="none (reported)", met=None)
            crypto = figure(
                gossip.per_cpu_s,
                floor,
                unit="msgs/CPU-s",
                op=">=",
                goal=0.6,
                extra={
                    "messages": messages,
                    "wall_rate_f0mesh": gossip.values,
                    "per_cpu_second_batch": batched.per_cpu_s,
                    "wall_rate_batch": batched.values,
                    # what each engine alone spends per envelope: a floor under the pipeline's cost
                    "engine_budget_us": validation.engine_budget(messages // 2),
                },
            )
            plan.say(
                f"message_rate_crypto: f0mesh {crypto['f0mesh']:.0f}, sign+verify {crypto['baseline']:.0f}"
                " per CPU-second"
            )
            out["message_rate_crypto"] = crypto
            if p2p_rates:
                fig = figure(
                    gossip.values,
                    p2p_rates,
                    unit="msgs/s",
                    op=">=",
                    goal=1.5,
                    extra={
                        "transport": "tcp (Noise, yamux)",
                        "messages_f0mesh": messages,
                        "messages_libp2p": p2p_messages,
                        "per_cpu_second_f0mesh": gossip.per_cpu_s,
                        "per_cpu_second_baseline": p2p_per_cpu,
                    },
                )
                per_cpu_ratio = statistics.median(gossip.per_cpu_s) / statistics.median(p2p_per_cpu)
                fig["samples"]["per_cpu_second_ratio"] = round(per_cpu_ratio, 4)
                fig["met"] = bool(fig["met"] and per_cpu_ratio >= 1.5)
                plan.say(
                    f"libp2p_message_rate: f0mesh {fig['f0mesh']:.0f}, "
                    f"py-libp2p {fig['baseline']:.0f} msgs/s; "
                    f"per CPU-second ratio {per_cpu_ratio:.2f}"
                )
                out["libp2p_message_rate"] = fig
            for node in (na, nb):
                node.post("/bench/profile", {"action": "start"})
            f0("gossip", messages, 100)
            out["message_rate"]["samples"]["profile"] = {
                role: node.post("/bench/profile", {"action": "stop", "top": 8})["top"]
                for role, node in (("sender", na), ("receiver", nb))
            }
    return out


# -- dead peer -----------------------------------------------------------------------------


def _watch_raw_survivor(
    survivor_url: str, killed_at: float, cap: float, stop: threading.Event
) -> float | None:
    """Seconds until the survivor's peer connection is closed or failed; None if not within ``cap``."""
    with httpx.Client(base_url=survivor_url, timeout=5) as http:
        while time.monotonic() - killed_at < cap and not stop.is_set():
            conns = http.get("/stats").json()["conns"].values()
            if any(c["state"] in ("closed", "failed") for c in conns):
                return time.monotonic() - killed_at
            time.sleep(POLL_S)
    return None


def _dead_peer_f0mesh(procs: Procs, n: int, samples: list[float]) -> None:
    """Fresh pair per repeat: link, let heartbeats flow, SIGKILL one, poll the other every 50 ms."""
    for i in range(n):
        a, b = procs.f0mesh_up(f"a{i}", NO_AUTODIAL), procs.f0mesh_up(f"b{i}", NO_AUTODIAL)
        procs.wait_ready()
        assert b.peer_id
        a.post("/dial", {"url": b.url})
        time.sleep(1.0)  # a few heartbeats in both directions, as on any live link
        b.kill()
        killed_at = time.monotonic()
        wait_until(lambda a=a, b=b: _link_state(a, b.peer_id) == "failed", 30, POLL_S, "link failed")
        samples.append(time.monotonic() - killed_at)
        a.kill()


def bench_dead_peer(plan: Plan, meanwhile: Callable[[], None] | None = None) -> dict[str, Any]:
    """The baseline waits for aiortc's consent checks (~30 s), so its pairs run in the background,
    all at once, while the f0mesh repeats run one after another and then ``meanwhile`` (a benchmark
    that does not time anything, so the idle baseline processes cannot disturb it)."""
    n_f0 = plan.n(2, 5)
    n_base = plan.repeats or (1 if plan.quick else 3)
    cap = 40.0 if plan.quick else 60.0
    f0_s: list[float] = []
    stop = threading.Event()
    with Procs(plan.workdir / "dead_peer") as procs, concurrent.futures.ThreadPoolExecutor(n_base) as pool:
        pairs = [(procs.raw_peer(f"rs{i}"), procs.raw_peer(f"rk{i}")) for i in range(n_base)]
        procs.wait_ready()
        watchers = []
        for survivor, victim in pairs:
            survivor.post("/connect", {"url": victim.url})
            victim.kill()
            watchers.append(pool.submit(_watch_raw_survivor, survivor.url, time.monotonic(), cap, stop))
        try:
            _dead_peer_f0mesh(procs, n_f0, f0_s)
            if meanwhile is not None:
                meanwhile()
            detected = [w.result(timeout=cap + 30) for w in watchers]
        finally:
            stop.set()  # on an error, the watcher threads must not hold the exit up for the cap

    censored = sum(1 for d in detected if d is None)
    base_s = [cap if d is None else d for d in detected]
    plan.say(
        f"dead_peer: f0mesh {statistics.median(f0_s):.2f} s, baseline {statistics.median(base_s):.2f} s"
        + (f" ({censored} capped at {cap:.0f} s)" if censored else "")
    )
    return {
        "dead_peer": figure(
            f0_s,
            base_s,
            unit="s",
            op="<=",
            goal=0.2,
            extra={"baseline_cap_s": cap, "baseline_capped": censored},
        )
    }


# -- memory per link -----------------------------------------------------------------------


def _per_link_kb(
    procs: Procs, start: Callable[[str], Proc], dial: Callable[[Proc, Proc], None], k: int, min_age: float
) -> tuple[float, float, float]:
    """RSS the hub gains per link for K more links, after one warm-up link and ``min_age`` seconds of
    life have paid the one-time costs; returns (per link, before, after)."""
    hub = start("hub")
    born = time.monotonic()
    leaves = [start(f"leaf{j}") for j in range(k + 1)]
    procs.wait_ready()
    dial(hub, leaves[0])
    time.sleep(max(SETTLE_S, min_age - (time.monotonic() - born)))
    before = rss_stable_kb(hub.pid)
    for leaf in leaves[1:]:
        dial(hub, leaf)
    time.sleep(SETTLE_S)
    after = rss_stable_kb(hub.pid)
    return (after - before) / k, before, after


def bench_link_memory(plan: Plan) -> dict[str, Any]:
    """Also yields `node_rss_idle`: the hub's "after" reading is a node holding K + 1 idle links
    (8 in a full run; 5 in --quick, where 16 more processes would not fit in the time)."""
    k = 4 if plan.quick else 7  # plus the warm-up link
    n = plan.n(1, 3)
    f0_kb: list[float] = []
    base_kb: list[float] = []
    rss: dict[str, list[float]] = {
        f"{side}_rss_{when}_kb": [] for side in ("f0mesh", "baseline") for when in ("before", "after")
    }

    def dial(hub: Proc, leaf: Proc) -> None:
        hub.post("/dial", {"url": leaf.url})

    def connect(hub: Proc, leaf: Proc) -> None:
        hub.post("/connect", {"url": leaf.url})

    def f0mesh_run(i: int) -> None:
        with Procs(Path(tempfile.mkdtemp(prefix=f"memory-f0-{i}-", dir=plan.workdir))) as procs:

            def start(name: str) -> Proc:
                return procs.f0mesh_up(name, NO_AUTODIAL)

            per_link, before, after = _per_link_kb(procs, start, dial, k, F0MESH_WARM_S)
            f0_kb.append(per_link)
            rss["f0mesh_rss_before_kb"].append(before)
            rss["f0mesh_rss_after_kb"].append(after)

    def raw_run(i: int) -> None:
        with Procs(Path(tempfile.mkdtemp(prefix=f"memory-raw-{i}-", dir=plan.workdir))) as procs:
            per_link, before, after = _per_link_kb(procs, procs.raw_peer, connect, k, 0.0)
            base_kb.append(per_link)
            rss["baseline_rss_before_kb"].append(before)
            rss["baseline_rss_after_kb"].append(after)

    # A failed repeat is started afresh: a half-made link would leave its memory in the hub.
    f0_round, raw_round = _Retrying(f0mesh_run, lambda: None), _Retrying(raw_run, lambda: None)
    for i in range(n):
        _ordered(i, f0_round, raw_round)
    f0_med, base_med = statistics.median(f0_kb), statistics.median(base_kb)
    plan.say(f"link_memory: f0mesh {f0_med:.0f} kB, baseline {base_med:.0f} kB")
    return {
        "link_memory": figure(
            f0_kb,
            base_kb,
            unit="kB",
            op="<=",
            goal=1.5,
            extra={
                "links": k,
                **rss,
                "f0mesh_failed_rounds": f0_round.failures,
                "baseline_failed_rounds": raw_round.failures,
            },
        ),
        "node_rss_idle": figure(
            rss["f0mesh_rss_after_kb"],
            rss["baseline_rss_after_kb"],
            unit="kB",
            op="<=",
            goal=1.2,
            extra={"links": k + 1},
        ),
    }


def reported(
    f0mesh: list[float], baseline: list[float], *, unit: str, extra: dict[str, Any]
) -> dict[str, Any]:
    """A figure with the usual shape but no goal: an absolute number shown next to its baseline."""
    fig = figure(f0mesh, baseline, unit=unit, op=">=", goal=0.0, extra=extra)
    fig["goal"] = "none (reported)"
    fig["met"] = None
    return fig


# -- validation ----------------------------------------------------------------------------


def bench_validation(plan: Plan) -> dict[str, Any]:
    count = 3_000 if plan.quick else 10_000
    rates = validation.measure(count, plan.n(3, 5))
    ops = validation.crdt_op_costs(count)
    fig = figure(
        rates["f0mesh"],
        rates["baseline"],
        unit="msgs/s",
        op=">=",
        goal=0.5,
        extra={
            "envelopes": count,
            "wall_f0mesh": rates["f0mesh_wall"],
            "wall_baseline": rates["baseline_wall"],
            "crdt_op_us": ops,
        },
    )
    plan.say(f"validation: f0mesh {fig['f0mesh']:.0f}, baseline {fig['baseline']:.0f} per CPU-second")
    plan.say("signed state, CPU us per op: " + ", ".join(f"{k} {v:.1f}" for k, v in ops.items()))
    return {"validation": fig}


# -- gossip in a mesh of N processes -------------------------------------------------------

GOSSIP_SIZES = (8, 16, 32)
GOSSIP_MESSAGES = 50  # per N in a full run: a p99 over fewer is the maximum
QUICK_GOSSIP_MAX = 16  # 16 more processes take about a minute to start on two cores: full runs only


def bench_gossip(plan: Plan) -> dict[str, Any]:
    """One growing mesh; a size that fails is recorded with its reason, and larger ones are skipped."""
    messages = plan.repeats or (10 if plan.quick else GOSSIP_MESSAGES)
    by_n: dict[str, Any] = {}
    with Procs(plan.workdir / "gossip") as procs:
        mesh = Mesh(procs, random.Random(12))
        for n in GOSSIP_SIZES:
            if plan.quick and n > QUICK_GOSSIP_MAX:
                by_n[str(n)] = {"nodes": n, "error": "skipped in --quick (about a minute of start-up)"}
                continue
            try:
                by_n[str(n)] = result = measure_n(mesh, n, messages, ready_timeout=120.0 + 2 * n)
            except (RuntimeError, TimeoutError, httpx.HTTPError) as exc:
                by_n[str(n)] = {"nodes": n, "error": f"{type(exc).__name__}: {exc}".splitlines()[0][:300]}
                plan.say(f"gossip N={n}: failed: {by_n[str(n)]['error']}")
                break
            plan.say(
                f"gossip N={n}: last delivery p50 {result['last_delivery_ms_p50']:.0f} ms, "
                f"p99 {result['last_delivery_ms_p99']:.0f} ms, one-hop RTT {result['one_hop_rtt_ms']:.1f} ms"
            )
    done = [r for r in by_n.values() if "error" not in r]
    if not done:
        raise RuntimeError(f"gossip: no mesh size gave figures: {by_n}")
    first = done[0]
    fig = reported(
        first["last_delivery_ms"],
        [first["one_hop_rtt_ms"]],
        unit="ms",
        extra={"nodes": first["nodes"], "by_n": by_n},
    )
    return {"gossip": fig}


# -- py-libp2p mesh: spread and idle memory -----------------------------------------------


def bench_libp2p_mesh(plan: Plan, results: dict[str, Any]) -> dict[str, Any]:
    """A gossipsub mesh of N = 8 then 16 py-libp2p processes, measured as `gossip` measures
    f0mesh's (same N, publish gap and message count), and its hub's RSS with 8 connections.

    The f0mesh side of each figure comes from this run's `gossip` and `node_rss_idle` keys; one that
    was not measured leaves its libp2p key out, with the reason."""
    messages = plan.repeats or (10 if plan.quick else GOSSIP_MESSAGES)  # as `gossip` sends
    pylibp2p.ensure_venv(plan.say)
    by_n: dict[str, Any] = {}
    out: dict[str, Any] = {}
    with pylibp2p.Peers(plan.workdir / "libp2p-mesh") as peers:
        mesh = pylibp2p.Libp2pMesh(peers, random.Random(12))
        for n in (8, 16):
            try:
                mesh.grow(n)
                by_n[str(n)] = result = mesh.measure(messages)
            except (RuntimeError, TimeoutError) as exc:
                by_n[str(n)] = {"nodes": n, "error": f"{type(exc).__name__}: {exc}".splitlines()[0][:300]}
                plan.say(f"libp2p gossip N={n}: failed: {by_n[str(n)]['error']}")
                break
            plan.say(
                f"libp2p gossip N={n}: last delivery p50 {result['last_delivery_ms_p50']:.0f} ms, "
                f"p99 {result['last_delivery_ms_p99']:.0f} ms"
            )
        time.sleep(SETTLE_S)
        hub_links = min(pylibp2p.HUB_LINKS, len(mesh.nodes) - 1)
        hub_kb = mesh.hub_rss_kb()
    f0_rss = results.get("node_rss_idle")
    if f0_rss is not None:
        out["libp2p_rss_idle"] = reported(
            f0_rss["samples"]["f0mesh"],
            [hub_kb],
            unit="kB",
            extra={"f0mesh_links": f0_rss["samples"]["links"], "libp2p_connections": hub_links},
        )
    f0_by_n = (results.get("gossip") or {}).get("samples", {}).get("by_n", {})
    common = [
        n
        for n in ("16", "8")
        if "error" not in f0_by_n.get(n, {"error": 1}) and "error" not in by_n.get(n, {"error": 1})
    ]
    if common:
        n = common[0]
        out["libp2p_gossip"] = reported(
            [f0_by_n[n]["last_delivery_ms_p99"]],
            [by_n[n]["last_delivery_ms_p99"]],
            unit="ms",
            extra={"nodes": int(n), "by_n": by_n, "transport": "tcp (Noise, yamux)"},
        )
    return out


# -- libdatachannel spike ------------------------------------------------------------------

LDC_WHEEL = "pylibdatachannel==0.2.0"
# A namespace of its own: both libraries gather candidates on every interface, so the spike gets one
# veth address (IPv6 off, which only slowed ICE down) and nothing leaves the namespace.
_NETNS = (
    "ip link set lo up && sysctl -qw net.ipv6.conf.all.disable_ipv6=1 "
    "&& sysctl -qw net.ipv6.conf.default.disable_ipv6=1 && ip link add v0 type veth peer name v1 "
    '&& ip addr add 10.250.0.1/24 dev v0 && ip link set v0 up && ip link set v1 up && exec "$@"'
)


def _ensure_ldc(say: Callable[[str], None]) -> None:
    """bench/.ldc-lib with the pylibdatachannel wheel (pip --target; never an f0mesh dependency)."""
    if (libdatachannel_spike.LIB / "pylibdatachannel").is_dir():
        return
    say(f"installing {LDC_WHEEL} into {libdatachannel_spike.LIB.relative_to(REPO)} (once; ~30 MB)")
    target = str(libdatachannel_spike.LIB)
    argv = [sys.executable, "-m", "pip", "install", "-q", "--target", target, LDC_WHEEL]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        tail = " | ".join((proc.stderr or proc.stdout).strip().splitlines()[-3:])
        raise RuntimeError(f"{LDC_WHEEL} could not be installed: {tail}"[:300])


def bench_libdatachannel(plan: Plan) -> dict[str, Any]:
    """Spike: aiortc (f0mesh's link library) against libdatachannel, one process, own namespace."""
    _ensure_ldc(plan.say)
    mib, repeats, links = (8, plan.n(2, 3), 4) if plan.quick else (16, plan.n(2, 3), 8)
    argv = ["unshare", "--net", "sh", "-c", _NETNS, "sh"]
    argv += [sys.executable, "-m", "bench.libdatachannel_spike", str(mib), str(repeats), str(links)]
    log = plan.workdir / "libdatachannel.log"
    with log.open("w") as err:
        proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=err, text=True, timeout=300, cwd=REPO)
    if proc.returncode != 0:
        tail = " | ".join(log.read_text().strip().splitlines()[-3:])
        raise RuntimeError(f"libdatachannel spike exited {proc.returncode}: {tail}"[:300])
    spike = json.loads(proc.stdout.strip().splitlines()[-1])
    fig = reported(
        spike["throughput_mb_s"]["aiortc"],
        spike["throughput_mb_s"]["libdatachannel"],
        unit="MB/s",
        extra={k: v for k, v in spike.items() if k not in ("throughput_mb_s", "medians")},
    )
    med = spike["medians"]
    plan.say(
        f"libdatachannel_throughput: aiortc {fig['f0mesh']:.1f}, libdatachannel {fig['baseline']:.1f} MB/s; "
        f"CPU-s per MB {med['cpu_s_per_mb']['aiortc']:.3f} vs {med['cpu_s_per_mb']['libdatachannel']:.3f}; "
        f"interop {spike['interop']['ok']}"
    )
    return {"libdatachannel_throughput": fig}
