"""Does the simulator agree with real links? The same topology over SimNetwork and over MemoryNetwork.

MemoryNetwork is the engine's in-process network on a real asyncio loop: real time, real Ed25519,
ordered links with no added delay. The simulated run uses the same peers (identities, engine seeds),
links and parameters, over SimNetwork in virtual time with memoised signature checks; by default
with no added latency either (``regional=True`` uses the five-region model instead). Both publish from
the same origins; the comparison is who delivered and in how many hops.

This checks the simulator's machinery (clock, transport, signature memo) against the engine's own
reference network, not against WebRTC; a WebRTC comparison needs the node's LinkManager adapter.
"""

from __future__ import annotations

import asyncio
import random
import statistics
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from f0mesh.gossip import GossipEngine, GossipParams, MemoryGossipStore, MemoryNetwork, StoredMessage
from f0mesh.sim.clock import run_virtual
from f0mesh.sim.crypto import SimIdentity, fast_signatures
from f0mesh.sim.mesh import SimMesh
from f0mesh.sim.network import ZERO_LATENCY, LatencyModel, SimNetwork, partial_view
from f0mesh.trust import RateLimiter
from f0mesh.trust.service import NODE_TRUST_PARAMS

QUANTILES = (0.1, 0.25, 0.5, 0.75, 0.9, 1.0)


def agreement_params() -> GossipParams:
    """Engine defaults with a 1 s repair interval, so the real-time run ends in seconds."""
    return replace(GossipParams(), repair_interval_s=1.0)


def compare(
    n: int = 40, seed: int = 7, origins: int = 4, *, regional: bool = False, timeout_s: float = 30.0
) -> dict[str, Any]:
    """Run both and return per-message delivery counts and hop quantiles side by side."""
    edges = partial_view(n, random.Random(f"topology:{seed}:{n}"))
    chosen = random.Random(f"origins:{seed}").sample(range(n), origins)
    params = agreement_params()
    real = asyncio.run(_memory_run(n, seed, edges, chosen, params, timeout_s))
    with fast_signatures():
        simulated = run_virtual(_sim_run(n, seed, edges, chosen, params, regional, timeout_s))
    messages = []
    for origin, real_hops, sim_hops in zip(chosen, real, simulated, strict=True):
        messages.append(
            {
                "origin": origin,
                "delivered": {"memory": len(real_hops), "sim": len(sim_hops)},
                "mean_hops": {
                    "memory": round(statistics.mean(real_hops.values()), 3),
                    "sim": round(statistics.mean(sim_hops.values()), 3),
                },
                "quantiles": {
                    f"{q:g}": {
                        "memory": _quantile(real_hops.values(), q),
                        "sim": _quantile(sim_hops.values(), q),
                    }
                    for q in QUANTILES
                },
            }
        )
    pooled_real = [h for hops in real for h in hops.values()]
    pooled_sim = [h for hops in simulated for h in hops.values()]
    pooled = {
        f"{q:g}": {"memory": _quantile(pooled_real, q), "sim": _quantile(pooled_sim, q)} for q in QUANTILES
    }
    return {
        "peers": n,
        "links": len(edges),
        "seed": seed,
        "regional": regional,
        "all_delivered": all(m["delivered"]["memory"] == m["delivered"]["sim"] == n for m in messages),
        "pooled_quantiles": pooled,
        "pooled_mean_hops": {
            "memory": round(statistics.mean(pooled_real), 3),
            "sim": round(statistics.mean(pooled_sim), 3),
        },
        "messages": messages,
    }


def max_quantile_gap(result: dict[str, Any]) -> int:
    """The largest difference in hops between the two runs at any compared quantile."""
    return max(
        abs(pair["memory"] - pair["sim"])
        for message in result["messages"]
        for pair in message["quantiles"].values()
    )


def _quantile(values: Sequence[int] | Any, q: float) -> int:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


async def _memory_run(
    n: int,
    seed: int,
    edges: list[tuple[int, int]],
    origins: list[int],
    params: GossipParams,
    timeout_s: float,
) -> list[dict[int, int]]:
    id_rng = random.Random(f"identities:{seed}")
    identities = [SimIdentity.from_seed(id_rng) for _ in range(n)]
    network = MemoryNetwork()
    hops: dict[str, dict[int, int]] = {}
    engines = []
    for index, identity in enumerate(identities):

        def record(stored: StoredMessage, index: int = index) -> None:
            hops.setdefault(stored.id, {}).setdefault(
                index, 0 if stored.origin == identity_of[index] else stored.hops + 1
            )

        engine = GossipEngine(
            identity,
            network.transport(identity.peer_id),
            MemoryGossipStore(),
            params=params,
            origin_limiter=RateLimiter(NODE_TRUST_PARAMS.origin_rate),
            neighbour_limiter=RateLimiter(NODE_TRUST_PARAMS.neighbour_rate),
            rng=random.Random(f"engine:{seed}:{index}"),
        )
        engine.subscribe(None, record)
        network.attach(identity.peer_id, engine)
        engines.append(engine)
    identity_of = [identity.peer_id for identity in identities]
    for engine in engines:
        await engine.start()
    for a, b in edges:
        await network.connect(identities[a].peer_id, identities[b].peer_id)
    results = []
    try:
        for origin in origins:
            message_id = await engines[origin].publish("sim", {"origin": origin})
            async with asyncio.timeout(timeout_s):
                while len(hops.get(message_id, {})) < n:  # noqa: ASYNC110 (polling a plain dict)
                    await asyncio.sleep(0.01)
            results.append(dict(hops[message_id]))
    finally:
        for engine in engines:
            await engine.stop()
        await network.close()
    return results


async def _sim_run(
    n: int,
    seed: int,
    edges: list[tuple[int, int]],
    origins: list[int],
    params: GossipParams,
    regional: bool,
    timeout_s: float,
) -> list[dict[int, int]]:
    network = SimNetwork(
        latency=LatencyModel() if regional else ZERO_LATENCY, rng=random.Random(f"network:{seed}")
    )
    mesh = SimMesh(n, network, seed=seed, params=params)
    await mesh.start(edges)
    loop = asyncio.get_running_loop()
    results = []
    for origin in origins:
        delivery = await mesh.publish(origin, payload={"origin": origin})
        while len(delivery.first) < n and loop.time() - delivery.published_at < timeout_s:  # noqa: ASYNC110
            await asyncio.sleep(0.01)
        results.append({index: rec[1] for index, rec in delivery.first.items()})
    await mesh.stop()
    return results
