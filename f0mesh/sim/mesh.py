"""A mesh of real GossipEngines (or adversaries) on a SimNetwork, and what they deliver when.

Each honest peer is the unchanged GossipEngine with its defaults (GossipParams), an in-memory
store, and its clock on virtual time. Trust-weighted selection reads one shared table of global
scores, computed once with the trust layer's compute_scores (personalised PageRank per peer does
not scale to 10,000 peers in one process). Sybils are SybilPeer endpoints instead of engines.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import msgpack

from f0mesh.gossip import GossipEngine, GossipParams, MemoryGossipStore, StoredMessage
from f0mesh.gossip.audit import AuditRow
from f0mesh.gossip.envelope import Envelope
from f0mesh.gossip.errors import GossipReject
from f0mesh.gossip.transport import MessageType
from f0mesh.sim.crypto import SimIdentity, memo_verify
from f0mesh.sim.network import Degree, SimNetwork
from f0mesh.trust import RateLimiter, TrustGraph, compute_scores
from f0mesh.trust.service import NODE_TRUST_PARAMS

log = logging.getLogger(__name__)

EPOCH = 1_767_225_600.0  # 2026-01-01T00:00:00Z: virtual time 0 as the engines' wall clock


class SimStore(MemoryGossipStore):
    """MemoryGossipStore that counts audit rows instead of keeping them: 10,000 audit trails do not fit."""

    def __init__(self) -> None:
        super().__init__()
        self.audit_rows = 0

    async def commit(self, messages: list[StoredMessage], audit: list[AuditRow]) -> None:
        for message in messages:
            self.messages.setdefault(message.id, message)
        self.audit_rows += len(audit)
        self.commits += 1


class SybilPeer:
    """An adversary that joined the mesh like any peer.

    It acknowledges every envelope (so its neighbour believes the push succeeded and does not retry
    elsewhere) and forwards nothing: a black hole. In "corrupt" mode it also sends each envelope on
    with a broken signature, which honest peers must reject. It ignores repair digests and requests.
    """

    def __init__(self, peer_id: str, network: SimNetwork, mode: str, fanout: int, rng: random.Random) -> None:
        if mode not in ("drop", "corrupt"):
            raise ValueError(f"sybil mode must be drop or corrupt, got {mode!r}")
        self.peer_id = peer_id
        self._network = network
        self._mode = mode
        self._fanout = fanout
        self._rng = rng
        self.swallowed = 0

    async def on_message(self, from_peer: str, message: dict[str, Any]) -> None:
        if message.get("type") != MessageType.MSGS:
            return
        ids, corrupted = [], []
        for raw in message.get("msgs") or ():
            try:
                envelope = Envelope.decode(raw)
            except GossipReject:
                continue
            ids.append(envelope.id)
            self.swallowed += 1
            if self._mode == "corrupt":
                bad = bytes([envelope.signature[0] ^ 0xFF]) + envelope.signature[1:]
                corrupted.append(msgpack.packb([envelope.signed, bad, envelope.hops + 1], use_bin_type=True))
        if ids:
            await self._send(from_peer, {"type": MessageType.ACK.value, "ids": ids})
        if corrupted:
            others = [p for p in self._network.neighbours(self.peer_id) if p != from_peer]
            for peer in self._rng.sample(others, min(self._fanout, len(others))):
                await self._send(peer, {"type": MessageType.MSGS.value, "msgs": corrupted})

    async def _send(self, peer: str, message: dict[str, Any]) -> None:
        try:
            await self._network._send(self.peer_id, peer, message)
        except Exception as exc:
            log.debug("sybil send failed: %s", exc)

    async def on_neighbour_up(self, peer_id: str) -> None:
        pass

    async def on_neighbour_down(self, peer_id: str) -> None:
        pass


@dataclass
class Delivery:
    """Who delivered one message when.

    ``first[node index] = (seconds after publishing, path length in hops, envelope copies and
    transport messages the whole network had sent by then)``.
    """

    message_id: str
    origin: int
    published_at: float
    first: dict[int, tuple[float, int, int, int]] = field(default_factory=dict)


class SimNode:
    __slots__ = ("engine", "identity", "index", "online", "region", "store", "sybil")

    def __init__(self, index: int, identity: SimIdentity) -> None:
        self.index = index
        self.identity = identity
        self.store = SimStore()
        self.engine: GossipEngine | None = None
        self.sybil: SybilPeer | None = None
        self.online = False
        self.region = 0


class SimMesh:
    """n peers on ``network``; ``sybils`` are indices of adversaries; ``scores`` the shared trust table
    (None: uniform selection)."""

    def __init__(
        self,
        n: int,
        network: SimNetwork,
        *,
        seed: int,
        params: GossipParams | None = None,
        sybils: Sequence[int] = (),
        sybil_mode: str = "drop",
        scores: Mapping[str, float] | None = None,
        degree: Degree | None = None,
    ) -> None:
        self.network = network
        self.params = params or GossipParams()
        self.seed = seed
        self.degree = degree or Degree()
        self.sybil_set = frozenset(sybils)
        self.sybil_mode = sybil_mode
        self._scores = scores
        id_rng = random.Random(f"identities:{seed}")
        self.nodes = [SimNode(i, SimIdentity.from_seed(id_rng)) for i in range(n)]
        self.by_peer = {node.identity.peer_id: node.index for node in self.nodes}
        for node in self.nodes:
            network.add_peer(node.identity.peer_id)
            node.region = network.region[node.identity.peer_id]
        self.tracked: dict[str, Delivery] = {}
        self._rng = random.Random(f"mesh:{seed}")

    def peer_id(self, index: int) -> str:
        return self.nodes[index].identity.peer_id

    @property
    def honest(self) -> list[int]:
        return [i for i in range(len(self.nodes)) if i not in self.sybil_set]

    def set_scores(self, scores: Mapping[str, float] | None) -> None:
        self._scores = scores

    def _scores_provider(self) -> Callable[[], Mapping[str, float]]:
        return lambda: self._scores if self._scores is not None else {}

    async def boot(self, index: int) -> None:
        """(Re)start a peer on its identity and store, as a process start would."""
        node = self.nodes[index]
        peer_id = node.identity.peer_id
        if index in self.sybil_set:
            node.sybil = SybilPeer(
                peer_id, self.network, self.sybil_mode, self.params.d, random.Random(f"sybil:{index}")
            )
            self.network.attach(peer_id, node.sybil)
            node.online = True
            return
        loop = asyncio.get_running_loop()
        engine = GossipEngine(
            node.identity,
            self.network.transport(peer_id),
            node.store,
            params=self.params,
            scores_provider=self._scores_provider(),  # type: ignore[arg-type]
            origin_limiter=RateLimiter(NODE_TRUST_PARAMS.origin_rate, clock=loop.time),
            neighbour_limiter=RateLimiter(NODE_TRUST_PARAMS.neighbour_rate, clock=loop.time),
            rng=random.Random(f"engine:{self.seed}:{index}"),
            clock=lambda: EPOCH + loop.time(),
            verifier=memo_verify,
        )
        engine.subscribe(None, lambda stored, index=index: self._delivered(index, stored))
        node.engine = engine
        self.network.attach(peer_id, engine)
        await engine.start()
        node.online = True

    async def start(self, edges: Sequence[tuple[int, int]]) -> None:
        """Boot every peer, then open the links (each engine hears of each as it comes up)."""
        for index in range(len(self.nodes)):
            await self.boot(index)
        for a, b in edges:
            await self.network.connect(self.peer_id(a), self.peer_id(b))

    async def leave(self, index: int) -> list[int]:
        """Stop a peer (its store survives) and close its links; returns its former neighbours."""
        node = self.nodes[index]
        former = [self.by_peer[p] for p in await self.network.isolate(node.identity.peer_id)]
        self.network.detach(node.identity.peer_id)
        if node.engine is not None:
            await node.engine.stop()
            node.engine = None
        node.online = False
        return former

    async def dial_up(self, index: int, target: int | None = None) -> None:
        """Link a peer to random online peers until it holds ``target`` links (default d), as its
        connection manager would, never pushing another above d_hi."""
        want = self.degree.d if target is None else target
        me = self.peer_id(index)
        online = [i for i, node in enumerate(self.nodes) if node.online and i != index]
        attempts = 0
        while self.network.degree(me) < want and attempts < 20 * want and online:
            attempts += 1
            other = self._rng.choice(online)
            peer = self.peer_id(other)
            if self.network.linked(me, peer) or self.network.degree(peer) >= self.degree.d_hi:
                continue
            await self.network.connect(me, peer)

    async def publish(self, index: int, topic: str = "sim", payload: Any = None) -> Delivery:
        """Publish from a peer and start tracking who delivers the message."""
        engine = self.nodes[index].engine
        if engine is None:
            raise RuntimeError(f"peer {index} is not running")
        loop = asyncio.get_running_loop()
        started = loop.time()
        message_id = await engine.publish(topic, payload if payload is not None else {"n": len(self.tracked)})
        delivery = self.tracked[message_id] = Delivery(message_id, index, started)
        # the origin delivered to itself inside publish(), before the id was known here
        self._record(delivery, index, 0)
        return delivery

    def _delivered(self, index: int, stored: StoredMessage) -> None:
        delivery = self.tracked.get(stored.id)
        if delivery is not None and index not in delivery.first:
            self._record(delivery, index, stored.hops + 1)

    def _record(self, delivery: Delivery, index: int, path: int) -> None:
        elapsed = asyncio.get_running_loop().time() - delivery.published_at
        net = self.network
        delivery.first[index] = (elapsed, path, net.envelopes, sum(net.sent.values()))

    async def stop(self) -> None:
        for node in self.nodes:
            if node.engine is not None:
                await node.engine.stop()


def trust_table(
    mesh: SimMesh,
    edges: Sequence[tuple[int, int]],
    rng: random.Random,
    *,
    pretrusted: int = 10,
    attack_edge_fraction: float = 0.1,
    sybil_extra_edges: int = 8,
) -> dict[str, float]:
    """Global trust scores for the mesh, from the edges each peer would have formed by behaviour.

    Honest peers trust the honest neighbours that delivered to them (weight 1). A Sybil delivers
    nothing, so it earns no edge, except that ``attack_edge_fraction`` of honest-Sybil links carry
    a careless 0.5 (Sybils behaving well for a while). Sybils trust each other: their neighbours
    and ``sybil_extra_edges`` random fellow Sybils. ``pretrusted`` honest peers play the bootstrap
    nodes (EigenTrust's pre-trusted set).
    """
    graph = TrustGraph()
    honest = mesh.honest
    sybils = sorted(mesh.sybil_set)
    for a, b in edges:
        for x, y in ((a, b), (b, a)):
            px, py = mesh.peer_id(x), mesh.peer_id(y)
            x_sybil, y_sybil = x in mesh.sybil_set, y in mesh.sybil_set
            if x_sybil == y_sybil:  # honest trust honest, Sybils trust Sybils
                graph.set_opinion(px, py, 1.0)
            elif not x_sybil and rng.random() < attack_edge_fraction:
                graph.set_opinion(px, py, 0.5)
    for s in sybils:
        for other in rng.sample(sybils, min(sybil_extra_edges, len(sybils) - 1) + 1):
            if other != s:
                graph.set_opinion(mesh.peer_id(s), mesh.peer_id(other), 1.0)
    seeds = [mesh.peer_id(i) for i in rng.sample(honest, min(pretrusted, len(honest)))]
    return compute_scores(graph, seeds)
