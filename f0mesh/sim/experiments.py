"""The scale experiments, each a reproducible function of its parameters and a seed.

    broadcast  coverage over time of messages published by random peers (time, hops, messages sent)
    sybil      delivery to honest peers with a fraction of black-hole Sybils, trust vs uniform selection
    fanout     messages sent per delivery, and coverage time, against the push fanout
    eclipse    Sybils dial one victim until its links are full: its delivery, trust vs uniform selection
    crdt       LWW-map convergence after a partition between two halves of the mesh heals

Every random choice comes from a generator seeded by (seed, what it is for), so a run is repeated
exactly by the same command; results are plain dicts ready for JSON. `f0mesh simulate` drives them.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import math
import os
import random
import resource
import statistics
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from typing import Any

from f0mesh.crdt import LWWMap
from f0mesh.gossip import GossipParams
from f0mesh.sim import eclipse, serf
from f0mesh.sim.clock import run_virtual
from f0mesh.sim.crdt_sync import CrdtPeer
from f0mesh.sim.crypto import fast_signatures
from f0mesh.sim.mesh import EPOCH, Delivery, SimMesh, trust_table
from f0mesh.sim.network import (
    REGIONS,
    ZERO_LATENCY,
    Degree,
    LatencyModel,
    SimNetwork,
    components_of,
    partial_view,
)
from f0mesh.sim.plots import write_outputs

FRACTIONS = (("50", 0.5), ("99", 0.99), ("99.9", 0.999), ("100", 1.0))
CHECKPOINTS_S = (0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 90.0, 120.0)
POLL_S = 0.05  # how often the driver looks whether a message has reached everyone (virtual seconds)

Progress = Callable[[str], None]
_ENGINE = GossipParams()  # the engine's defaults are the simulation's
_DEGREE = Degree()


def _quiet(_: str) -> None:
    pass


@dataclass(frozen=True)
class Scenario:
    """One simulated deployment. Defaults are the engine's own (GossipParams) on 1,000 peers."""

    peers: int = 1000
    loss: float = 0.0
    fanout: int = _ENGINE.d  # the push degree D (d_lo and d_hi scale with it as in GossipParams)
    ttl: int = _ENGINE.ttl
    seed: int = 1
    sybils: float = 0.0  # fraction of peers that are black-hole Sybils
    sybil_mode: str = "drop"  # or "corrupt": also forward copies with broken signatures
    selection: str = "trust"  # "trust": roulette over the shared trust table; "uniform": no scores
    repair_interval_s: float | None = _ENGINE.repair_interval_s  # None: periodic repair off
    repair_lookback_s: float = _ENGINE.repair_lookback_s  # how long a message is offered in repair rounds
    churn_per_min: float = 0.0  # fraction of peers leaving per minute (each rejoins after a downtime)
    churn_downtime_s: float = 30.0  # mean time a leaving peer stays away
    messages: int = 3  # published one after another, each from a random honest peer
    window_s: float = 120.0  # longest a message is followed
    settle_s: float = 2.0  # after full coverage, time for the last acks and retries
    degree: int = _DEGREE.d  # connection manager target; d_lo = 2/3 of it, d_hi = twice it
    # eclipse (sim/eclipse.py): that many of the Sybils dial one honest victim until its links are
    # over D_hi, its connection manager prunes, again eclipse_rounds times, then they fill it to D_hi
    eclipse: int = 0
    eclipse_rounds: int = 20  # a persistent attacker: 20 connection-manager ticks, ~40 s
    zero_latency: bool = False
    real_signatures: bool = False

    def __post_init__(self) -> None:
        if self.peers < 2:
            raise ValueError("a mesh needs at least 2 peers")
        if not 0.0 <= self.loss < 1.0:
            raise ValueError("loss is a fraction in [0, 1), e.g. 0.1 for 10 %")
        if not 0.0 <= self.sybils < 1.0:
            raise ValueError("sybils is a fraction in [0, 1), e.g. 0.2 for 20 %")
        if self.selection not in ("trust", "uniform"):
            raise ValueError("selection is trust or uniform")
        if self.fanout < 1 or self.messages < 1 or self.degree < 2:
            raise ValueError("fanout and messages must be >= 1, degree >= 2")
        if self.eclipse < 0 or self.eclipse_rounds < 1:
            raise ValueError("eclipse must be >= 0 and eclipse_rounds >= 1")

    def params(self) -> GossipParams:
        repair = self.repair_interval_s if self.repair_interval_s is not None else 1e9
        return replace(
            GossipParams(),
            d=self.fanout,
            d_lo=min(_ENGINE.d_lo, self.fanout),
            d_hi=max(self.fanout, round(_ENGINE.d_hi * self.fanout / _ENGINE.d)),
            ttl=self.ttl,
            repair_interval_s=repair,
            repair_lookback_s=self.repair_lookback_s,
        )

    def degree_bounds(self) -> Degree:
        return Degree(d_lo=max(1, round(self.degree * 2 / 3)), d=self.degree, d_hi=2 * self.degree)

    def latency(self) -> LatencyModel:
        return ZERO_LATENCY if self.zero_latency else LatencyModel()


@contextmanager
def _simulation_gc() -> Iterator[Callable[[], None]]:
    """Automatic GC off for the run; the caller checkpoints between phases.

    CPython's collector rescans every live object as they accumulate; with 10,000 engines that was
    more than half the run time. A checkpoint freezes what lives now out of later scans without
    collecting: a collection at each checkpoint found no garbage at 3,000 peers but cost 1-2 s each.
    The run's garbage is collected once, on the way out.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield gc.freeze
    finally:
        gc.unfreeze()
        if enabled:
            gc.enable()
        gc.collect()


def _rss_mb() -> float:
    """Resident memory now (Linux /proc; falls back to the peak)."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _cpu_s() -> float:
    """CPU seconds of this process: on a shared machine a steadier measure than wall time."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# broadcast


def run_broadcast(scenario: Scenario, progress: Progress = _quiet) -> dict[str, Any]:
    """Publish ``scenario.messages`` messages one after another and follow each to every honest peer."""
    wall, cpu = time.perf_counter(), _cpu_s()
    rss_before = _rss_mb()
    with fast_signatures(not scenario.real_signatures), _simulation_gc() as checkpoint:
        result = run_virtual(_broadcast(scenario, progress, checkpoint))
    result["scenario"] = asdict(scenario)
    result["serf"] = serf.summary(scenario.peers, scenario.loss, scenario.fanout)
    result["wall_s"] = round(time.perf_counter() - wall, 1)
    result["cpu_s"] = round(_cpu_s() - cpu, 1)
    result["rss_before_mb"] = round(rss_before, 1)
    result["peak_rss_mb"] = round(_peak_rss_mb(), 1)
    return result


async def _broadcast(sc: Scenario, progress: Progress, checkpoint: Callable[[], None]) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    n = sc.peers
    topo_rng = random.Random(f"topology:{sc.seed}:{n}:{sc.degree}")
    network = SimNetwork(latency=sc.latency(), loss=sc.loss, rng=random.Random(f"network:{sc.seed}:{n}"))
    sybils = sorted(random.Random(f"sybils:{sc.seed}:{n}").sample(range(n), round(sc.sybils * n)))
    degree = sc.degree_bounds()
    mesh = SimMesh(
        n, network, seed=sc.seed, params=sc.params(), sybils=sybils, sybil_mode=sc.sybil_mode, degree=degree
    )
    edges = partial_view(n, topo_rng, degree)
    eclipse_rng = random.Random(f"eclipse:{sc.seed}:{n}")
    victim, attackers = _eclipse_parties(n, sybils, sc, eclipse_rng) if sc.eclipse else (None, [])
    scores: dict[str, float] = {}
    if sc.selection == "trust":
        # the attackers' links to the victim are trust edges too (a careless share of them)
        attack_edges = [(min(victim, s), max(victim, s)) for s in attackers] if victim is not None else []
        scores = trust_table(mesh, edges + attack_edges, random.Random(f"trust:{sc.seed}:{n}"))
        mesh.set_scores(scores)
    setup_start = time.perf_counter()
    await mesh.start(edges)
    eclipsed: dict[str, Any] = {}
    if victim is not None:
        value = (lambda peer: scores.get(peer, 0.0)) if scores else (lambda peer: eclipse_rng.random())
        eclipsed = await eclipse.attack(mesh, victim, attackers, sc.eclipse_rounds, value, eclipse_rng)
    checkpoint()
    setup = {
        "setup_wall_s": round(time.perf_counter() - setup_start, 1),
        "rss_after_start_mb": round(_rss_mb(), 1),
        "links": len(edges),
        "mean_degree": round(2 * len(edges) / n, 2),
        "regions": dict(Counter(REGIONS[node.region] for node in mesh.nodes)) if not sc.zero_latency else {},
    }
    churn_task = None
    churned = Counter[str]()
    if sc.churn_per_min > 0:
        churn_task = loop.create_task(_churn(mesh, sc, random.Random(f"churn:{sc.seed}:{n}"), churned))
    await asyncio.sleep(1.0)  # let every engine's timers start
    origin_rng = random.Random(f"origins:{sc.seed}:{n}")
    publishers = [i for i in mesh.honest if i != victim]  # the victim is watched, not a publisher
    results = []
    delivery_log: list[Delivery] = []
    for number in range(sc.messages):
        wall = time.perf_counter()
        origin = origin_rng.choice([i for i in publishers if mesh.nodes[i].online])
        reachable = _reachable_honest(mesh, origin)
        online = sum(1 for i in mesh.honest if mesh.nodes[i].online)
        before = network.counters()
        delivery = await mesh.publish(origin)
        delivery_log.append(delivery)
        while loop.time() - delivery.published_at < sc.window_s:
            targets = [i for i in mesh.honest if mesh.nodes[i].online]
            if all(i in delivery.first for i in targets):
                break
            await asyncio.sleep(POLL_S)
        await asyncio.sleep(sc.settle_s)
        targets = [i for i in mesh.honest if mesh.nodes[i].online]
        after = network.counters()
        window = {key: after[key] - before[key] for key in after}
        results.append(_message_result(delivery, targets, reachable / online, before, window))
        checkpoint()
        summary = results[-1]
        progress(
            f"  message {number + 1}/{sc.messages}: {summary['delivered']}/{summary['targets']} delivered, "
            f"t99={_fmt(summary['t']['99'])} s t100={_fmt(summary['t']['100'])} s, "
            f"{window['envelopes']} envelopes, wall {time.perf_counter() - wall:.1f} s"
        )
    if churn_task is not None:
        churn_task.cancel()
    rejected: Counter[str] = Counter()
    for node in mesh.nodes:
        if node.engine is not None:
            rejected.update(node.engine.stats.rejected)
    out: dict[str, Any] = {}
    if victim is not None:
        out["victim"] = {**_victim_result(mesh, victim, delivery_log), **eclipsed}
    return {
        **out,
        "setup": setup,
        "churn": dict(churned),
        "rejected": dict(sorted(rejected.items())),  # by reason, summed over the honest engines
        "messages": results,
        "summary": _summarise(results),
    }


def _eclipse_parties(
    n: int, sybils: Sequence[int], sc: Scenario, rng: random.Random
) -> tuple[int, list[int]]:
    """The victim (an honest peer) and the ``sc.eclipse`` Sybils that dial it."""
    if len(sybils) < sc.eclipse:
        raise ValueError(
            f"eclipse {sc.eclipse} needs at least that many Sybils, the scenario has {len(sybils)}"
        )
    sybil_set = set(sybils)
    victim = rng.choice([i for i in range(n) if i not in sybil_set])
    return victim, rng.sample(list(sybils), sc.eclipse)


def _victim_result(mesh: SimMesh, victim: int, deliveries: Sequence[Delivery]) -> dict[str, Any]:
    """When the eclipsed victim delivered each message (None: never), and its links."""
    times = [d.first[victim][0] if victim in d.first else None for d in deliveries]
    got = sorted(t for t in times if t is not None)
    links = [mesh.by_peer[p] for p in mesh.network.neighbours(mesh.peer_id(victim))]
    return {
        "index": victim,
        "links": len(links),
        "sybil_links": sum(1 for i in links if i in mesh.sybil_set),
        "delivered": round(len(got) / len(times), 4),
        "within": {
            f"{c:g}": round(sum(1 for t in got if t <= c) / len(times), 4) for c in (0.5, 1.0, 2.0, 5.0)
        },
        "median_s": round(statistics.median(got), 4) if got else None,
        "max_s": round(got[-1], 4) if got else None,
    }


def _reachable_honest(mesh: SimMesh, origin: int) -> int:
    """Honest online peers linked to the origin through honest peers: all any protocol could reach."""
    index = mesh.by_peer
    adjacent = [[index[p] for p in mesh.network.neighbours(mesh.peer_id(i))] for i in range(len(mesh.nodes))]
    allowed = [i for i in mesh.honest if mesh.nodes[i].online]
    for component in components_of(adjacent, allowed):
        if origin in component:
            return len(component)
    return 1


def _message_result(
    delivery: Delivery,
    targets: Sequence[int],
    reachable: float,
    before: dict[str, int],
    window: dict[str, int],
) -> dict[str, Any]:
    """``reachable``: share of the honest peers online at publication that any protocol could reach."""
    target_set = set(targets)
    ordered = sorted(
        (rec for index, rec in delivery.first.items() if index in target_set), key=lambda r: r[0]
    )
    total = len(targets)
    times: dict[str, float | None] = {}
    hops: dict[str, int | None] = {}
    envelopes: dict[str, int | None] = {}
    transport: dict[str, int | None] = {}
    paths = sorted(rec[1] for rec in ordered)
    for label, fraction in FRACTIONS:
        need = max(1, math.ceil(fraction * total - 1e-9))
        if len(ordered) >= need:
            t, _, sent_envelopes, sent_messages = ordered[need - 1]
            times[label] = round(t, 4)
            hops[label] = paths[need - 1]
            envelopes[label] = sent_envelopes - before["envelopes"]
            transport[label] = sent_messages - before["transport_messages"]
        else:
            times[label] = hops[label] = envelopes[label] = transport[label] = None
    at = {f"{c:g}": round(sum(1 for rec in ordered if rec[0] <= c) / total, 5) for c in CHECKPOINTS_S}
    delivered = len(ordered)
    return {
        "origin": delivery.origin,
        "targets": total,
        "delivered": delivered,
        "coverage": round(delivered / total, 6),
        "reachable": round(reachable, 6),
        "t": times,
        "hops": hops,
        "envelopes": envelopes,
        "transport": transport,
        "at": at,
        "window": window,
        "envelopes_per_delivery": round(window["envelopes"] / max(1, delivered - 1), 3),
        "transport_per_delivery": round(window["transport_messages"] / max(1, delivered - 1), 3),
        "hop_histogram": dict(sorted(Counter(paths).items())),
        "curve": _downsample([(rec[0], (k + 1) / total) for k, rec in enumerate(ordered)]),
    }


def _downsample(points: list[tuple[float, float]], keep: int = 250) -> list[list[float]]:
    """About ``keep`` points, denser in the tail where the interesting part of a coverage curve is."""
    if len(points) <= keep:
        return [[round(t, 4), round(f, 6)] for t, f in points]
    step = max(1, len(points) // (keep // 2))
    tail = len(points) - max(keep // 2, len(points) // 100)
    chosen = [p for i, p in enumerate(points) if i % step == 0 or i >= tail or i == len(points) - 1]
    return [[round(t, 4), round(f, 6)] for t, f in chosen]


def _summarise(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians over the messages (a threshold not reached by every message is None); coverage at the
    checkpoints is the mean over the messages."""

    def median(values: list[Any]) -> Any:
        if not values or any(v is None for v in values):
            return None
        return round(statistics.median(values), 4)

    out: dict[str, Any] = {
        "messages": len(results),
        "coverage": round(statistics.mean(r["coverage"] for r in results), 6),
        "reached_all": sum(1 for r in results if r["delivered"] == r["targets"]),
        "reachable_fraction": round(statistics.mean(r["reachable"] for r in results), 6),
        "envelopes_per_delivery": median([r["envelopes_per_delivery"] for r in results]),
        "transport_per_delivery": median([r["transport_per_delivery"] for r in results]),
    }
    for key in ("t", "hops", "envelopes", "transport"):
        out[key] = {label: median([r[key][label] for r in results]) for label in results[0][key]}
    out["at"] = {
        label: round(statistics.mean(r["at"][label] for r in results), 5) for label in results[0]["at"]
    }
    hist: Counter[int] = Counter()
    for r in results:
        hist.update(r["hop_histogram"])
    out["hop_histogram"] = dict(sorted(hist.items()))
    return out


async def _churn(mesh: SimMesh, sc: Scenario, rng: random.Random, counts: Counter[str]) -> None:
    """Peers leave (process stops, links close) as a Poisson process and come back after a downtime,
    restarting on their store and dialling new links; neighbours left below d_lo dial replacements."""
    loop = asyncio.get_running_loop()
    rate = sc.churn_per_min / 60.0 * sc.peers
    pending: set[asyncio.Task[None]] = set()

    async def rejoin(index: int, after: float) -> None:
        await asyncio.sleep(after)
        await mesh.boot(index)
        await mesh.dial_up(index)
        counts["rejoined"] += 1

    while True:
        await asyncio.sleep(rng.expovariate(rate))
        candidates = [i for i in mesh.honest if mesh.nodes[i].online]
        if len(candidates) < 3:
            continue
        index = rng.choice(candidates)
        former = await mesh.leave(index)
        counts["left"] += 1
        for other in former:
            if mesh.nodes[other].online and mesh.network.degree(mesh.peer_id(other)) < mesh.degree.d_lo:
                await mesh.dial_up(other)
        task = loop.create_task(rejoin(index, rng.expovariate(1.0 / sc.churn_downtime_s)))
        pending.add(task)
        task.add_done_callback(pending.discard)


# experiment families


def coverage_sweep(
    peers: Sequence[int], losses: Sequence[float], base: Scenario, progress: Progress = _quiet
) -> list[dict[str, Any]]:
    """Coverage for each (N, loss), the same topology per N across losses."""
    runs = []
    for n in peers:
        for loss in losses:
            scenario = replace(base, peers=n, loss=loss)
            progress(f"broadcast N={n} loss={loss:.0%} fanout={scenario.fanout} ttl={scenario.ttl}")
            runs.append(run_broadcast(scenario, progress))
            progress(f"  -> {_line(runs[-1])}")
    return runs


def sybil_sweep(
    fractions: Sequence[float],
    base: Scenario,
    progress: Progress = _quiet,
    selections: Sequence[str] = ("trust", "uniform"),
) -> list[dict[str, Any]]:
    runs = []
    for fraction in fractions:
        for selection in selections:
            scenario = replace(base, sybils=fraction, selection=selection)
            progress(
                f"sybil N={scenario.peers} sybils={fraction:.0%} {selection} selection, {scenario.sybil_mode}"
            )
            runs.append(run_broadcast(scenario, progress))
            progress(f"  -> {_line(runs[-1])}")
    return runs


# D_hi + 1: enough to push a victim over D_hi on their own, so no honest link is safe by numbers
# (ten Sybils can never prune the last two: ten Sybils and two honest links are not above D_hi)
ECLIPSE_ATTACKERS = _DEGREE.d_hi + 1


def eclipse_sweep(
    base: Scenario, progress: Progress = _quiet, selections: Sequence[str] = ("trust", "uniform")
) -> list[dict[str, Any]]:
    """The eclipse under each selection. A message the eclipsed victim never gets would hold the run
    for the whole window, so it is short: delivery is read at 0.5-5 s."""
    runs = []
    attackers = base.eclipse or min(ECLIPSE_ATTACKERS, round(base.sybils * base.peers))
    for selection in selections:
        scenario = replace(base, eclipse=attackers, selection=selection, window_s=10.0, settle_s=0.5)
        progress(
            f"eclipse N={scenario.peers} sybils={scenario.sybils:.0%}: {attackers} dial one victim, "
            f"{scenario.eclipse_rounds} rounds, {selection} selection"
        )
        runs.append(run_broadcast(scenario, progress))
        progress(f"  -> {_victim_line(runs[-1]['victim'])}")
    return runs


def _victim_line(victim: dict[str, Any]) -> str:
    return (
        f"victim delivered {victim['delivered']:.0%} (within 1 s {victim['within']['1']:.0%}), "
        f"honest links {victim['honest_links_before']} -> {victim['honest_links_after']}, "
        f"{victim['sybil_links']} of {victim['links']} links Sybil"
    )


def fanout_sweep(fanouts: Sequence[int], base: Scenario, progress: Progress = _quiet) -> list[dict[str, Any]]:
    runs = []
    for fanout in fanouts:
        scenario = replace(base, fanout=fanout)
        progress(f"fanout N={scenario.peers} fanout={fanout} ttl={scenario.ttl}")
        runs.append(run_broadcast(scenario, progress))
        progress(f"  -> {_line(runs[-1])}")
    return runs


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _line(run: dict[str, Any]) -> str:
    s = run["summary"]
    t = s["t"]
    return (
        f"coverage {s['coverage']:.2%}, t50 {_fmt(t['50'])} t99 {_fmt(t['99'])} t99.9 {_fmt(t['99.9'])} "
        f"t100 {_fmt(t['100'])} s, hops99 {s['hops']['99']}, {s['envelopes_per_delivery']} env/delivery, "
        f"wall {run['wall_s']} s (CPU {run['cpu_s']} s), peak RSS {run['peak_rss_mb']:.0f} MB"
    )


# CRDT convergence after a partition


@dataclass(frozen=True)
class CrdtScenario:
    """Two halves of the mesh (the Americas and the rest) wrote apart; the partition heals at t = 0.

    ``heal_links`` 0 brings every cut link back (an IP-level outage ending); k > 0 brings back only
    k of them, as when the connection managers had rebuilt each side and bridge dials rejoin them.
    """

    peers: int = 1000
    seed: int = 1
    loss: float = 0.0
    writers: int = 32  # per side, during the partition
    keys: int = 64  # key space shared by both sides, so concurrent writes conflict
    writes_each: int = 2
    degree: int = _DEGREE.d
    heal_links: int = 0
    window_s: float = 300.0
    side_a: tuple[str, ...] = ("us-east", "us-west", "sa-east")


def run_crdt(scenario: CrdtScenario, progress: Progress = _quiet) -> dict[str, Any]:
    """Time until every replica holds every write of both sides after the heal."""
    wall, cpu = time.perf_counter(), _cpu_s()
    with _simulation_gc() as checkpoint:
        result = run_virtual(_crdt(scenario, progress, checkpoint))
    result["scenario"] = asdict(scenario)
    result["wall_s"] = round(time.perf_counter() - wall, 1)
    result["cpu_s"] = round(_cpu_s() - cpu, 1)
    result["peak_rss_mb"] = round(_peak_rss_mb(), 1)
    return result


async def _crdt(sc: CrdtScenario, progress: Progress, checkpoint: Callable[[], None]) -> dict[str, Any]:
    """The state before the heal is built directly: writers write (HLC-stamped, as during the
    partition) and each side's replicas are merged to their side's union, the precondition of the
    measurement. Only the heal runs over the network, where its cost is."""
    loop = asyncio.get_running_loop()
    n = sc.peers
    rng = random.Random(f"crdt:{sc.seed}:{n}")
    network = SimNetwork(loss=sc.loss, rng=random.Random(f"crdt-network:{sc.seed}:{n}"))
    names = [f"p{i:05d}" for i in range(n)]
    for name in names:
        network.add_peer(name)
    side_a_regions = {REGIONS.index(r) for r in sc.side_a}
    side = [network.region[name] in side_a_regions for name in names]
    degree = Degree(d_lo=max(1, round(sc.degree * 2 / 3)), d=sc.degree, d_hi=2 * sc.degree)
    edges = partial_view(n, random.Random(f"crdt-topology:{sc.seed}:{n}"), degree)
    index_of = {name: i for i, name in enumerate(names)}
    converged_at: dict[int, float] = {}
    target: dict[str, Any] = {"version": None, "since": 0.0}
    all_converged = asyncio.Event()

    def on_news(peer: CrdtPeer) -> None:
        if target["version"] is not None and peer.version() == target["version"]:
            converged_at.setdefault(index_of[peer.peer_id], loop.time() - target["since"])
            if len(converged_at) == n:
                all_converged.set()

    peers = [
        CrdtPeer(
            name,
            network,
            random.Random(f"crdt-peer:{sc.seed}:{i}"),
            lambda: EPOCH + loop.time(),
            on_news=on_news,
        )
        for i, name in enumerate(names)
    ]
    # the partition: writes on both sides, then each side converged on its own
    writes = 0
    sides: dict[bool, list[int]] = {flag: [i for i in range(n) if side[i] == flag] for flag in (True, False)}
    for members in sides.values():
        for writer in rng.sample(members, min(sc.writers, len(members))):
            for _ in range(sc.writes_each):
                await asyncio.sleep(rng.uniform(0, 0.1))
                peers[writer].write(f"k{rng.randrange(sc.keys):03d}", f"{names[writer]}:{writes}")
                writes += 1
        union = _union([peers[i] for i in members])
        for i in members:
            peers[i].map.merge(union)
    cross = [(a, b) for a, b in edges if side[a] != side[b]]
    for name, peer in zip(names, peers, strict=True):
        network.attach(name, peer)
        peer.start()
    for a, b in edges:
        if side[a] == side[b]:
            await network.connect(names[a], names[b])
    await _mend_side(network, names, side, degree, rng)
    await asyncio.sleep(5.0)  # the version exchanges of the new links find nothing to send
    checkpoint()
    sides_converged = all(
        peers[i].version() == peers[members[0]].version() for members in sides.values() for i in members
    )
    # the heal
    full = _union(peers).version()
    before = network.counters()
    target["version"], target["since"] = full, loop.time()
    for i, peer in enumerate(peers):
        if peer.version() == full:
            converged_at[i] = 0.0
    restored = cross if sc.heal_links == 0 else rng.sample(cross, min(sc.heal_links, len(cross)))
    for a, b in restored:
        await network.connect(names[a], names[b])
    if len(converged_at) < n:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(all_converged.wait(), sc.window_s)
    after = network.counters()
    distinct_states = len({tuple(sorted(p.map.items())) for p in peers})
    for peer in peers:
        peer.stop()
    times = sorted(converged_at.values())
    result_t: dict[str, float | None] = {}
    for label, fraction in FRACTIONS:
        need = max(1, math.ceil(fraction * n - 1e-9))
        result_t[label] = round(times[need - 1], 4) if len(times) >= need else None
    progress(
        f"  crdt N={n} heal_links={sc.heal_links or 'all'}: converged {len(times)}/{n}, "
        f"t50 {_fmt(result_t['50'])} t99 {_fmt(result_t['99'])} t100 {_fmt(result_t['100'])} s"
    )
    return {
        "side_sizes": {"americas": len(sides[True]), "rest": len(sides[False])},
        "cross_links": len(cross),
        "restored_links": len(restored),
        "writes": writes,
        "keys": len(peers[0].map.items()),
        "conflicts_logged_per_replica": round(sum(len(p.map.conflicts()) for p in peers) / n, 2),
        "sides_converged_before_heal": sides_converged,
        "converged": len(times),
        "identical": distinct_states == 1,
        "t": result_t,
        "after_heal": {key: after[key] - before[key] for key in ("transport_messages", "dropped", "bytes")},
        "curve": _downsample([(t, (k + 1) / n) for k, t in enumerate(times)]),
    }


def _union(peers: Sequence[CrdtPeer]) -> LWWMap:
    union = LWWMap("union")
    for peer in peers:
        union.merge(peer.map)
    return union


async def _mend_side(
    network: SimNetwork, names: list[str], side: list[bool], degree: Degree, rng: random.Random
) -> None:
    """Peers cut below d_lo dial random peers of their own side; islands get a bridge each."""
    index = {name: i for i, name in enumerate(names)}
    for flag in (True, False):
        members = [i for i in range(len(names)) if side[i] == flag]
        if len(members) < 2:
            continue
        for i in members:
            attempts = 0
            while network.degree(names[i]) < degree.d_lo and attempts < 50:
                attempts += 1
                j = rng.choice(members)
                if j != i and network.degree(names[j]) < degree.d_hi:
                    await network.connect(names[i], names[j])
        adjacent = [[index[p] for p in network.neighbours(name)] for name in names]
        components = components_of(adjacent, members)
        main = max(components, key=len)
        for component in components:
            if component is not main:
                await network.connect(names[min(component)], names[rng.choice(sorted(main))])


def crdt_sweep(
    peers: Sequence[int], base: CrdtScenario, progress: Progress = _quiet, heal_links: Sequence[int] = (0, 1)
) -> list[dict[str, Any]]:
    runs = []
    for n in peers:
        for heal in heal_links:
            progress(
                f"crdt N={n} loss={base.loss:.0%} heal={'all cut links' if heal == 0 else f'{heal} link(s)'}"
            )
            runs.append(run_crdt(replace(base, peers=n, heal_links=heal), progress))
            progress(f"  -> wall {runs[-1]['wall_s']} s, peak RSS {runs[-1]['peak_rss_mb']:.0f} MB")
    return runs


# the command line's entry point

EXPERIMENTS = ("broadcast", "sybil", "eclipse", "fanout", "crdt", "suite")
FANOUTS = (1, 2, 3, 4, 6, 8)
SYBIL_FRACTIONS = (0.1, 0.2, 0.4)


def simulate(
    experiment: str | None = None,
    *,
    peers: int = 1000,
    loss: float = 0.0,
    sybils: float = 0.0,
    fanout: int = _ENGINE.d,
    ttl: int = _ENGINE.ttl,
    seed: int = 1,
    messages: int = 3,
    churn: float = 0.0,
    out: str | os.PathLike[str] | None = None,
    progress: Progress = _quiet,
) -> dict[str, Any]:
    """Run one experiment (default: broadcast, or sybil when ``sybils`` > 0) and return its results.

    ``out``: also write ``<experiment>.json`` and the plots there. ``suite`` is every experiment at
    N = 100, 1,000 and 10,000 (capped by ``peers``), as docs/scale.md reports it.
    """
    name = experiment or ("sybil" if sybils > 0 else "broadcast")
    if name not in EXPERIMENTS:
        raise ValueError(f"unknown experiment {name!r}; one of {', '.join(EXPERIMENTS)}")
    base = Scenario(
        peers=peers, loss=loss, fanout=fanout, ttl=ttl, seed=seed, messages=messages, churn_per_min=churn
    )
    started = time.perf_counter()
    if name == "broadcast":
        progress(f"broadcast N={peers} loss={loss:.0%} fanout={fanout} ttl={ttl} churn={churn:.0%}/min")
        runs = [run_broadcast(replace(base, sybils=sybils), progress)]
        progress(f"  -> {_line(runs[0])}")
        results: dict[str, Any] = {"broadcast": runs}
    elif name == "sybil":
        results = {"sybil": sybil_sweep([sybils] if sybils > 0 else SYBIL_FRACTIONS, base, progress)}
    elif name == "eclipse":
        results = {"eclipse": eclipse_sweep(replace(base, sybils=sybils or 0.2), progress)}
    elif name == "fanout":
        results = {"fanout": fanout_sweep(FANOUTS, base, progress)}
    elif name == "crdt":
        results = {"crdt": crdt_sweep([peers], CrdtScenario(seed=seed, loss=loss), progress)}
    else:
        results = run_suite(max_peers=peers, seed=seed, progress=progress)
    results = {"experiment": name, "seed": seed, **results, "wall_s": round(time.perf_counter() - started, 1)}
    if out is not None:
        write_outputs(results, out)
    return results


def run_suite(max_peers: int = 10_000, seed: int = 1, progress: Progress = _quiet) -> dict[str, Any]:
    """Every experiment of docs/scale.md, at N = 100, 1,000, 10,000 (those up to max_peers)."""
    sizes = [n for n in (100, 1000, 10_000) if n <= max_peers] or [max_peers]
    big = sizes[-1]
    mid = 1000 if 1000 in sizes else big
    defaults = Scenario(seed=seed, messages=5)
    tuned = replace(defaults, fanout=6, ttl=16)

    def few(n: int) -> int:  # 10,000-peer runs follow fewer messages to stay within minutes
        return 3 if n >= 10_000 else 5

    out: dict[str, Any] = {
        "coverage": [],
        "coverage_tuned": [],
        "sybil": [],
        "eclipse": [],
        "fanout": [],
        "crdt": [],
        "churn": [],
    }
    for n in sizes:
        out["coverage"] += coverage_sweep([n], (0.0, 0.1, 0.5), replace(defaults, messages=few(n)), progress)
    for n in sizes:
        out["coverage_tuned"] += coverage_sweep(
            [n], (0.0, 0.1, 0.5), replace(tuned, messages=few(n)), progress
        )
    out["sybil"] += sybil_sweep(SYBIL_FRACTIONS, replace(defaults, peers=mid), progress)
    if big > mid:
        out["sybil"] += sybil_sweep([0.2], replace(defaults, peers=big, messages=few(big)), progress)
    out["eclipse"] += eclipse_sweep(replace(defaults, peers=mid, sybils=0.2, messages=20), progress)
    out["fanout"] += fanout_sweep(FANOUTS, replace(defaults, peers=mid, ttl=16), progress)
    if big > mid:
        out["fanout"] += fanout_sweep(
            (2, 3, 4, 6), replace(defaults, peers=big, ttl=16, messages=2), progress
        )
    out["recommended"] = recommended_runs(sizes, seed, progress)
    out["crdt"] += crdt_sweep(sizes, CrdtScenario(seed=seed), progress)
    for n in (mid, big) if big > mid else (mid,):
        scenario = replace(defaults, peers=n, churn_per_min=0.1, messages=few(n))
        progress(f"churn N={n} 10 %/min, mean downtime {scenario.churn_downtime_s:.0f} s")
        out["churn"].append(run_broadcast(scenario, progress))
        progress(f"  -> {_line(out['churn'][-1])}")
    return out


# what docs/scale.md recommends for 10,000 peers: push to as many neighbours as the connection
# manager's target degree, a hop limit past the mesh's push depth, and repair that keeps trying
RECOMMENDED = {"fanout": 6, "ttl": 16, "repair_interval_s": 2.0, "repair_lookback_s": 300.0}


def recommended_runs(
    sizes: Sequence[int], seed: int = 1, progress: Progress = _quiet
) -> list[dict[str, Any]]:
    """The recommended parameters under loss (largest N) and under Sybils (1,000 and largest N)."""
    big = max(sizes)
    mid = 1000 if 1000 in sizes else big
    base = Scenario(seed=seed, messages=3 if big >= 10_000 else 5, **RECOMMENDED)  # type: ignore[arg-type]
    runs = coverage_sweep([big], (0.0, 0.1, 0.5), base, progress)
    runs += sybil_sweep(SYBIL_FRACTIONS, replace(base, peers=mid, messages=5), progress)
    if big > mid:
        runs += sybil_sweep([0.2], replace(base, peers=big), progress)
    return runs


def figures(results: dict[str, Any]) -> dict[str, Any]:
    """The results without per-message detail and curves: what --json prints."""

    def strip(run: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in run.items() if k not in ("messages", "curve")}

    return {
        key: [strip(run) for run in value] if isinstance(value, list) else value
        for key, value in results.items()
    }


def report(results: dict[str, Any]) -> str:
    """A plain-text table of the figures, one line per run."""
    lines = []
    for key, value in results.items():
        if not isinstance(value, list) or not value:
            continue
        lines.append(f"{key}:")
        for run in value:
            sc = run["scenario"]
            if key == "crdt":
                t = run["t"]
                heal = "all cut links" if sc["heal_links"] == 0 else f"{sc['heal_links']} link(s)"
                lines.append(
                    f"  N={sc['peers']:>6} heal {heal:<13} converged {run['converged']}/{sc['peers']}"
                    f" identical={run['identical']}  t50 {_fmt(t['50'])}  t99 {_fmt(t['99'])}"
                    f"  t100 {_fmt(t['100'])} s  {run['after_heal']['transport_messages']} messages"
                    f"  wall {run['wall_s']} s (CPU {run['cpu_s']} s)"
                )
                continue
            s, serf_model = run["summary"], run["serf"]
            t = s["t"]
            label = (
                f"N={sc['peers']:>6} loss {sc['loss']:>4.0%} fanout {sc['fanout']} ttl {sc['ttl']:>2}"
                + (f" sybils {sc['sybils']:.0%} {sc['selection']}" if sc["sybils"] else "")
                + (f" churn {sc['churn_per_min']:.0%}/min" if sc["churn_per_min"] else "")
            )
            lines.append(
                f"  {label}: coverage {s['coverage']:.2%} (reachable {s['reachable_fraction']:.2%})"
                f"  t50 {_fmt(t['50'])}  t99 {_fmt(t['99'])}  t99.9 {_fmt(t['99.9'])}"
                f"  t100 {_fmt(t['100'])} s"
                f"  [Serf t99.9 {serf_model['t99.9_s']:.1f} s]  hops99 {s['hops']['99']}"
                f"  {s['envelopes_per_delivery']} envelopes/delivery"
                f"  wall {run['wall_s']} s (CPU {run['cpu_s']} s)"
                f"  peak RSS {run['peak_rss_mb']:.0f} MB"
            )
            if "victim" in run:
                lines.append(f"  {label} eclipse {sc['eclipse']}: {_victim_line(run['victim'])}")
    return "\n".join(lines)


__all__ = [
    "CHECKPOINTS_S",
    "EXPERIMENTS",
    "RECOMMENDED",
    "CrdtScenario",
    "Scenario",
    "coverage_sweep",
    "crdt_sweep",
    "eclipse_sweep",
    "fanout_sweep",
    "figures",
    "recommended_runs",
    "report",
    "run_broadcast",
    "run_crdt",
    "run_suite",
    "simulate",
    "sybil_sweep",
]
