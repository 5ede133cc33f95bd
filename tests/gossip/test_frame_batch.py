"""A msgs frame is checked envelope by envelope but accepted as a batch: its first copies reach the
writer as one item (one commit callback, one feedback call), with every decision still its own
audit row and every envelope acknowledged only once committed."""

from dataclasses import replace
from typing import Any

from bench.validation import UNLIMITED, make_envelopes
from f0mesh.gossip import AuditEvent, GossipEngine, GossipParams, MemoryGossipStore
from f0mesh.identity import Identity
from f0mesh.trust import RateLimiter

NEIGHBOUR = Identity.generate().peer_id


class Recorder:
    """A transport with no mesh to push to that keeps what the engine sends (acks)."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, dict[str, Any]]] = []

    def neighbours(self) -> list[str]:
        return []

    async def send(self, peer_id: str, message: dict[str, Any]) -> None:
        self.sent.append((peer_id, message))


async def _engine(store: MemoryGossipStore, transport: Recorder, feedback: list) -> GossipEngine:
    # one writer item per transaction: the store's commit count is the number of items submitted
    params = replace(GossipParams(), write_batch_rows=1, write_flush_interval_s=0.0)
    engine = GossipEngine(
        Identity.generate(),
        transport,
        store,
        params=params,
        origin_limiter=RateLimiter(UNLIMITED),  # the neighbour's default burst is below 64
        neighbour_limiter=RateLimiter(UNLIMITED),
        feedback=lambda peer, event, count=1: feedback.append((peer, str(event), count)),
    )
    await engine.start()
    return engine


async def test_a_frame_of_first_copies_is_one_writer_item_and_one_feedback_call():
    store, transport, feedback = MemoryGossipStore(), Recorder(), []
    engine = await _engine(store, transport, feedback)
    envelopes = make_envelopes(64)
    await engine.on_message(NEIGHBOUR, {"type": "msgs", "msgs": [e.encode() for e in envelopes]})
    await engine.flush()
    await engine.stop()
    ids = [e.id for e in envelopes]
    assert store.commits == 1 and sorted(store.messages) == sorted(ids)
    assert [(r.event, r.message_id, r.peer_id) for r in store.audit] == [
        (AuditEvent.RECEIVED, i, NEIGHBOUR) for i in ids
    ]
    assert feedback == [(NEIGHBOUR, "first_delivery", 64)]
    assert engine.stats.delivered == 64 and engine.stats.by_topic["delivered", "bench"] == 64
    acked = [i for peer, m in transport.sent if peer == NEIGHBOUR and m["type"] == "ack" for i in m["ids"]]
    assert acked == ids


async def test_rows_keep_the_order_of_the_decisions_and_a_duplicate_is_acked_after_its_first_copy():
    store, transport, feedback = MemoryGossipStore(), Recorder(), []
    engine = await _engine(store, transport, feedback)
    a, b = make_envelopes(2)
    frame = [a.encode(), a.encode(), b"garbage", b.encode()]
    await engine.on_message(NEIGHBOUR, {"type": "msgs", "msgs": frame})
    await engine.flush()
    await engine.stop()
    assert [(r.event, r.message_id, r.reason) for r in store.audit] == [
        (AuditEvent.RECEIVED, a.id, None),
        (AuditEvent.DUPLICATE, a.id, None),
        (AuditEvent.REJECTED, None, "malformed"),
        (AuditEvent.RECEIVED, b.id, None),
    ]
    assert store.commits == 4  # the first copy's item went to the writer before the duplicate's
    acked = [i for _peer, m in transport.sent for i in m["ids"]]
    assert sorted(acked) == sorted([a.id, a.id, b.id])
    assert (NEIGHBOUR, "malformed", 1) in feedback


class OneNeighbour(Recorder):
    def neighbours(self) -> list[str]:
        return [NEIGHBOUR]


async def test_an_ack_frame_is_one_writer_item_with_a_sent_row_per_acknowledged_message():
    store, transport, feedback = MemoryGossipStore(), OneNeighbour(), []
    engine = await _engine(store, transport, feedback)
    ids = [await engine.publish("t", n) for n in range(20)]
    assert engine.pending_pushes == 20  # each waits for the neighbour's ack
    await engine.flush()
    before = store.commits
    await engine.on_message(NEIGHBOUR, {"type": "ack", "ids": ids})
    await engine.flush()
    await engine.stop()
    assert store.commits == before + 1
    sent = [(r.message_id, r.peer_id) for r in store.audit if r.event == AuditEvent.SENT]
    assert sent == [(i, NEIGHBOUR) for i in ids] and engine.stats.acked_sent == 20
