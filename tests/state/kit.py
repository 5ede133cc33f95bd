"""Test helpers: ReplicatedState replicas over real gossip engines on a MemoryNetwork, with one fake clock.

The MemoryNetwork carries both the gossip engine's messages and the state's ctl messages (msgpack round
tripped, as a link would), demultiplexed like Node.link_message does.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from types import SimpleNamespace
from typing import Any

from gossip.meshkit import FAST, flat_limiter, wait_until

from f0mesh.crdt import HLC, RGA, LWWElementSet, LWWMap
from f0mesh.gossip import GossipEngine, MemoryGossipStore, MemoryNetwork
from f0mesh.identity import Identity
from f0mesh.peer_record import PeerRecord
from f0mesh.state import STATE_FRAME, PeerInfo, ReplicatedState, StateParams
from f0mesh.state.sync import gossip_payload

KIND_OF = {LWWMap: "map", LWWElementSet: "set", RGA: "list"}

PARAMS = StateParams(
    flush_delay_s=0.005,
    push_delay_s=0.02,
    sync_interval_s=3600.0,  # periodic rounds off: tests drive them
    peer_refresh_s=3600.0,
    collect_interval_s=1e9,
)


class Clock:
    """Epoch seconds that only a test moves forward (starts at the real time, so records verify)."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class MemoryStateStore:
    def __init__(self) -> None:
        self.rows: dict[str, tuple[str, bytes]] = {}
        self.puts = 0

    async def put_state(self, name: str, kind: str, data: bytes) -> None:
        self.rows[name] = (kind, data)
        self.puts += 1

    async def get_state(self, name: str) -> tuple[str, bytes] | None:
        return self.rows.get(name)

    async def list_states(self) -> list[tuple[str, str]]:
        return [(name, kind) for name, (kind, _data) in self.rows.items()]


class Endpoint:
    """What a link delivers, routed as the node routes it."""

    def __init__(self, engine: GossipEngine, state: ReplicatedState) -> None:
        self.engine = engine
        self.state = state
        self.received: list[dict[str, Any]] = []  # the state messages, for tests to inspect

    async def on_message(self, src: str, message: dict[str, Any]) -> None:
        if message.get("t") == STATE_FRAME:
            self.received.append(message)
            await self.state.on_ctl(src, message)
        else:
            await self.engine.on_message(src, message)

    async def on_neighbour_up(self, peer_id: str) -> None:
        await self.engine.on_neighbour_up(peer_id)
        self.state.on_link_open(peer_id)

    async def on_neighbour_down(self, peer_id: str) -> None:
        await self.engine.on_neighbour_down(peer_id)


class FakeGossip:
    """Just enough of a GossipEngine for a replica on its own: a clock, and a record of what it published."""

    def __init__(self, peer_id: str, clock: Clock) -> None:
        self.hlc = HLC(peer_id, clock=lambda: int(clock() * 1000))
        self.published: list[Any] = []

    async def publish(self, topic: str, payload: Any) -> str:
        self.published.append(payload)
        return f"m{len(self.published)}"

    def subscribe(self, topic: str | None, callback: Any) -> Any:
        return lambda: None


def solo(
    store: Any,
    clock: Clock,
    identity: Identity | None = None,
    on_violation: Callable[[str, str], None] | None = None,
    audit: Callable[[str, str, str], None] | None = None,
    writers: tuple[str, ...] = (),
    **params: Any,
) -> ReplicatedState:
    """A replica with no links: changes and deltas are fed to it by hand."""
    identity = identity or Identity.generate()
    return ReplicatedState(
        identity.peer_id,
        store,
        FakeGossip(identity.peer_id, clock),
        send=_nowhere,
        neighbours=list,
        own_record=lambda: PeerRecord.create(identity, "http://10.0.0.9:8700"),
        sign=identity.sign,
        on_violation=on_violation,
        audit=audit,
        writers=writers,
        params=replace(PARAMS, **params),
        clock=clock,
    )


async def _nowhere(peer_id: str, message: dict[str, Any]) -> None:
    raise ConnectionError("no links")


def signed(name: str, delta: Any, author: Identity) -> Any:
    """The delta with the author's ops signed, as that author's node would send it."""
    delta.sign_ops(author.peer_id, f"{KIND_OF[type(delta)]}/{name}", author.sign)
    return delta


def gossiped(name: str, delta: Any, author: Identity | None = None) -> SimpleNamespace:
    """A delivered "state" gossip message carrying a CRDT delta (signed by author, if given), as the engine
    hands it to subscribers."""
    if author is not None:
        signed(name, delta, author)
    return SimpleNamespace(
        origin="someone", payload=gossip_payload(name, KIND_OF[type(delta)], delta.to_bytes())
    )


class Replica:
    def __init__(self, cluster: Cluster, index: int, store: Any) -> None:
        self.cluster = cluster
        self.index = index
        self.identity = Identity.generate()
        self.peer_id = self.identity.peer_id
        self.store = store
        self.gossip_store = MemoryGossipStore()
        self.mirrored: list[PeerInfo] = []
        self.violations: list[tuple[str, str]] = []
        self.audited: list[tuple[str, str, str]] = []
        self.engine: GossipEngine
        self.state: ReplicatedState

    async def boot(self, params: StateParams | None = None) -> Replica:
        network = self.cluster.network
        transport = network.transport(self.peer_id)
        self.engine = GossipEngine(
            self.identity,
            transport,
            self.gossip_store,
            params=FAST,
            origin_limiter=flat_limiter(10_000, 10_000),
            neighbour_limiter=flat_limiter(10_000, 10_000),
            clock=self.cluster.clock,
            may_publish=lambda topic, origin: self.state.may_publish(topic, origin),
        )
        self.state = ReplicatedState(
            self.peer_id,
            self.store,
            self.engine,
            send=transport.send,
            neighbours=transport.neighbours,
            own_record=lambda: PeerRecord.create(self.identity, f"http://10.0.0.{self.index + 1}:8700"),
            sign=self.identity.sign,
            on_peer=self.mirrored.append,
            on_violation=lambda peer, why: self.violations.append((peer, why)),
            audit=lambda peer, why, detail: self.audited.append((peer, why, detail)),
            writers=self.cluster.writers(),
            params=params or self.cluster.params,
            clock=self.cluster.clock,
        )
        self.endpoint = Endpoint(self.engine, self.state)
        network.attach(self.peer_id, self.endpoint)
        await self.engine.start()
        await self.state.start()
        return self

    async def shutdown(self) -> None:
        await self.state.stop()
        await self.engine.stop()
        await self.cluster.network.isolate(self.peer_id)
        self.cluster.network.detach(self.peer_id)

    def value(self, name: str) -> Any:
        doc = self.state.get(name)
        return None if doc is None else (doc.value(), doc.crdt.version().to_dict())

    def status_of(self, other: Replica) -> str | None:
        seen = [info.status for info in self.mirrored if info.peer_id == other.peer_id]
        return seen[-1] if seen else None


class Cluster:
    """Replicas that each name all the others as writers of the documents they create (declare_writers),
    as tests that write one document from several replicas must."""

    def __init__(self, n: int, params: StateParams = PARAMS, *, declare_writers: bool = True) -> None:
        self.clock = Clock()
        self.params = params
        self.declare_writers = declare_writers
        self.network = MemoryNetwork()
        self.replicas = [Replica(self, i, MemoryStateStore()) for i in range(n)]

    def writers(self) -> list[str]:
        return [r.peer_id for r in self.replicas] if self.declare_writers else []

    def __getitem__(self, index: int) -> Replica:
        return self.replicas[index]

    async def boot(self) -> Cluster:
        for replica in self.replicas:
            await replica.boot()
        return self

    async def link(self, *pairs: tuple[int, int]) -> None:
        for a, b in pairs:
            await self.network.connect(self[a].peer_id, self[b].peer_id)

    async def unlink(self, *pairs: tuple[int, int]) -> None:
        for a, b in pairs:
            await self.network.disconnect(self[a].peer_id, self[b].peer_id)

    async def converged(self, name: str, replicas: list[Replica] | None = None, timeout: float = 10.0) -> Any:
        """Wait until the replicas hold equal content and versions of a document; returns the content."""
        group = replicas or self.replicas

        def equal() -> bool:
            values = [r.value(name) for r in group]
            return values[0] is not None and all(v == values[0] for v in values)

        await wait_until(equal, timeout, f"{name!r} to converge")
        return group[0].value(name)[0]

    async def close(self) -> None:
        for replica in self.replicas:
            await replica.state.stop()  # a no-op for one already stopped
            await replica.engine.stop()
        await self.network.close()
