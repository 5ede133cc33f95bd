"""Test helpers: a mesh of GossipEngines on a MemoryNetwork, and bounded waits."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Iterable
from typing import Any

import networkx as nx

from f0mesh.gossip import GossipEngine, GossipParams, MemoryGossipStore, MemoryNetwork, StoredMessage
from f0mesh.identity import Identity
from f0mesh.trust import RateLimiter, RateParams

FAST = GossipParams(
    ack_timeout_s=0.5,
    repair_interval_s=3600.0,  # periodic repair off unless a test turns it on or drives rounds
    heartbeat_s=3600.0,  # and so is the heartbeat's IHAVE
    batch_linger_s=0.001,
    write_flush_interval_s=0.002,
)


def flat_limiter(rate: float, burst: float, clock: Callable[[], float] | None = None) -> RateLimiter:
    """Every key gets the same limits, whatever its trust."""
    params = RateParams(
        base_rate=0.0, min_rate=rate, max_rate=rate, base_burst=0.0, min_burst=burst, max_burst=burst
    )
    return RateLimiter(params) if clock is None else RateLimiter(params, clock=clock)


async def wait_until(predicate: Callable[[], bool], timeout: float, what: str = "condition") -> None:
    """Poll until predicate() holds; fail the test after timeout seconds."""
    try:
        async with asyncio.timeout(timeout):
            while True:
                if predicate():
                    return
                await asyncio.sleep(0.01)
    except TimeoutError:
        raise AssertionError(f"timed out after {timeout} s waiting for {what}") from None


def regular_topology(n: int, degree: int, seed: int) -> list[tuple[int, int]]:
    """A connected random graph where every node has exactly ``degree`` neighbours."""
    for attempt in range(100):
        graph = nx.random_regular_graph(degree, n, seed=seed + attempt)
        if nx.is_connected(graph):
            return sorted((min(a, b), max(a, b)) for a, b in graph.edges)
    raise AssertionError("no connected regular graph found")


def distances(edges: Iterable[tuple[int, int]], source: int) -> dict[int, int]:
    return nx.single_source_shortest_path_length(nx.Graph(list(edges)), source)


class Endpoint:
    """A hand-written neighbour on a MemoryNetwork: subclasses say what they do with a message; link
    events mean nothing to them."""

    async def on_message(self, from_peer: str, message: dict[str, Any]) -> None:
        pass

    async def on_neighbour_up(self, peer_id: str) -> None:
        pass

    async def on_neighbour_down(self, peer_id: str) -> None:
        pass


class Node:
    def __init__(self, mesh: Mesh, index: int, identity: Identity, store: MemoryGossipStore) -> None:
        self.mesh = mesh
        self.index = index
        self.identity = identity
        self.peer_id = identity.peer_id
        self.store = store
        self.delivered: list[StoredMessage] = []
        self.feedback: list[tuple[str, str]] = []
        self.engine: GossipEngine | None = None

    async def boot(self, **overrides: Any) -> GossipEngine:
        """(Re)create and start the engine on this node's identity and store, then attach it."""
        kwargs = {**self.mesh.engine_kwargs, **overrides}
        kwargs.setdefault("params", FAST)
        kwargs.setdefault("rng", random.Random(self.mesh.seed * 1000 + self.index))
        # generous limits unless a test passes its own (None: the engine's trust-based defaults)
        kwargs.setdefault("origin_limiter", flat_limiter(10_000, 10_000))
        kwargs.setdefault("neighbour_limiter", flat_limiter(10_000, 10_000))
        transport = kwargs.pop("transport", None) or self.mesh.network.transport(self.peer_id)
        self.engine = GossipEngine(
            self.identity,
            transport,
            self.store,
            feedback=lambda peer, event, count=1: self.feedback.extend([(peer, str(event))] * count),
            **kwargs,
        )
        self.engine.subscribe(None, self.delivered.append)
        self.mesh.network.attach(self.peer_id, self.engine)
        await self.engine.start()
        return self.engine

    def has(self, ids: Iterable[str]) -> bool:
        return all(i in self.store.messages for i in ids)


class Mesh:
    """n engines; boot() starts them, link() wires a topology."""

    def __init__(self, n: int, *, loss: float = 0.0, seed: int = 0, **engine_kwargs: Any) -> None:
        self.seed = seed
        self.network = MemoryNetwork(loss=loss, rng=random.Random(seed))
        self.engine_kwargs = engine_kwargs
        self.nodes = [Node(self, i, Identity.generate(), MemoryGossipStore()) for i in range(n)]

    def __getitem__(self, index: int) -> Node:
        return self.nodes[index]

    async def boot(self) -> Mesh:
        for node in self.nodes:
            await node.boot()
        return self

    async def link(self, edges: Iterable[tuple[int, int]]) -> None:
        for a, b in edges:
            await self.network.connect(self.nodes[a].peer_id, self.nodes[b].peer_id)

    def missing(self, ids: Iterable[str]) -> int:
        wanted = list(ids)
        return sum(1 for node in self.nodes for i in wanted if i not in node.store.messages)

    async def settle(self, timeout: float = 20.0) -> None:
        await self.network.settle(timeout)
        for node in self.nodes:
            if node.engine is not None:
                await node.engine.flush()

    async def close(self) -> None:
        for node in self.nodes:
            if node.engine is not None:
                await node.engine.stop()
        await self.network.close()
