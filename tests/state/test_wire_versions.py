"""Signed state is spoken only with peers whose hello says wire 1.1: a 1.0 node's unsigned state is
ignored without penalty, and deltas of signed ops are gossiped on a topic a 1.0 node does not read."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from f0mesh.crdt import HLC, HLCTimestamp
from f0mesh.crdt.codec import pack, pack_value
from f0mesh.crdt.replicated import FORMAT
from f0mesh.identity import Identity
from f0mesh.peer_record import PeerRecord
from f0mesh.state import STATE_TOPIC, MapChange, ReplicatedState
from f0mesh.state.manager import LEGACY_STATE_TOPIC
from f0mesh.state.sync import delta_pages, gossip_payload

from .kit import PARAMS, Clock, MemoryStateStore

OLD, NEW = "old-peer", "new-peer"


class TopicGossip:
    """The engine's publish and subscribe, recording topics."""

    def __init__(self, peer_id: str, clock: Clock) -> None:
        self.hlc = HLC(peer_id, clock=lambda: int(clock() * 1000))
        self.published: list[str] = []
        self.subscribers: dict[str, Any] = {}

    async def publish(self, topic: str, payload: Any) -> str:
        self.published.append(topic)
        return f"m{len(self.published)}"

    def subscribe(self, topic: str | None, callback: Any) -> Any:
        self.subscribers[str(topic)] = callback
        return lambda: self.subscribers.pop(str(topic), None)


def _unsigned_delta(author: str, ms: int) -> bytes:
    """A map delta as a 1.0 node sends it: one op, no signature."""
    record = [HLCTimestamp(ms, 0, author), True, pack_value("v"), author, 1]
    return pack([FORMAT, "lww-map", {author: [0, 1]}, {}, [["k", record]]])


async def test_state_goes_to_and_comes_from_1_1_peers_only_and_old_state_costs_nothing() -> None:
    identity, clock = Identity.generate(), Clock()
    gossip = TopicGossip(identity.peer_id, clock)
    sent: list[tuple[str, dict]] = []
    audited: list[tuple[str, str, str]] = []
    violations: list[tuple[str, str]] = []

    async def send(peer_id: str, message: dict) -> None:
        sent.append((peer_id, message))

    state = ReplicatedState(
        identity.peer_id, MemoryStateStore(), gossip, send=send, neighbours=lambda: [OLD, NEW],
        own_record=lambda: PeerRecord.create(identity, "http://10.0.0.9:8700"), sign=identity.sign,
        on_violation=lambda peer, why: violations.append((peer, why)),
        audit=lambda peer, why, detail: audited.append((peer, why, detail)),
        speaks=lambda peer: peer != OLD, params=PARAMS, clock=clock,
    )  # fmt: skip
    await state.start()
    try:
        state.on_link_open(OLD)
        state.on_link_open(NEW)
        await state.update("cfg", MapChange(set={"k": "mine"}))
        state._push_now()  # a round of anti-entropy with every neighbour
        await state._sync_one()
        for _ in range(20):  # the spawned sends run
            await state.flush()
        assert sent and {peer for peer, _ in sent} == {NEW}
        assert STATE_TOPIC in gossip.published and LEGACY_STATE_TOPIC not in gossip.published

        unsigned = _unsigned_delta(OLD, int(clock() * 1000))
        [page] = delta_pages("old-doc", "map", unsigned, 1, PARAMS.page_bytes)
        await state.on_ctl(OLD, page)
        await state.on_ctl(OLD, {"t": "state", "op": "versions", "reply": True, "docs": []})
        old_gossip = SimpleNamespace(origin=OLD, payload=gossip_payload("old-doc", "map", unsigned))
        gossip.subscribers[LEGACY_STATE_TOPIC](old_gossip)
        assert state.get("old-doc") is None
        assert not state.dropped and audited == [] and violations == []
        assert {peer for peer, _ in sent} == {NEW}  # the versions request of the old peer got no answer
    finally:
        await state.stop()
