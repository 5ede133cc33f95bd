"""What the per-envelope path now does once per frame or per writer batch (issue #25) must still
come out as if done per envelope: the clock past every admitted stamp and none refused, every
committed publish pushed, and the flood targets read afresh for each batch."""

from __future__ import annotations

import asyncio
import time

from f0mesh.crdt import HLC, HLCTimestamp
from f0mesh.gossip import Envelope, Reason
from f0mesh.identity import Identity

from .meshkit import FAST, Mesh, wait_until
from .test_engine import GatedStore


async def test_a_frame_moves_the_clock_past_its_newest_admitted_stamp_and_no_refused_one():
    mesh = await Mesh(1).boot()
    engine = mesh[0].engine
    origin = Identity.generate()
    now_ms = int(time.time() * 1000)
    skew_ms = int(FAST.max_clock_skew_s * 1000)

    def envelope(seq: int, wall_ms: int, logical: int) -> Envelope:
        stamp = HLCTimestamp(wall_ms, logical, origin.peer_id)
        return Envelope.create(origin, seq, stamp, "t", seq, 8)

    # ahead of the local clock, within the skew, and not in order: the newest is the first
    newest = envelope(1, now_ms + skew_ms // 2, 1)
    refused = envelope(2, now_ms + skew_ms + 60_000, 0)
    older = envelope(3, now_ms + skew_ms // 4, 9)
    await engine.on_message(
        "neighbour", {"type": "msgs", "msgs": [e.encode() for e in (newest, refused, older)]}
    )
    assert engine.stats.rejected[Reason.CLOCK_SKEW.value] == 1
    await mesh.settle()
    assert newest.id in mesh[0].store.messages and older.id in mesh[0].store.messages
    last = engine.hlc.last
    assert last is not None and newest.hlc < last < refused.hlc
    assert engine.hlc.now() > newest.hlc  # what this node stamps next comes after what it accepted
    await mesh.close()


async def test_a_committed_publish_is_pushed_even_if_its_caller_went_away():
    mesh = Mesh(2)
    mesh[0].store = gated = GatedStore()
    await mesh.boot()
    await mesh.link([(0, 1)])

    async def caller() -> str:  # as Node.publish awaits the engine
        return await mesh[0].engine.publish("t", "orphan")

    task = asyncio.ensure_future(caller())
    await asyncio.sleep(0.05)
    task.cancel()
    gated.gate.set()
    await wait_until(lambda: len(gated.messages) == 1, 5, "the commit")
    (message_id,) = gated.messages
    await wait_until(lambda: message_id in mesh[1].store.messages, 5, "the push of the orphaned publish")
    await mesh.close()


async def test_the_flood_targets_are_read_once_per_writer_batch_and_afresh_for_the_next():
    mesh = Mesh(3)
    mesh[0].store = gated = GatedStore()
    await mesh.boot()
    await mesh.link([(0, 1)])
    engine = mesh[0].engine
    reads: list[list[str]] = []
    targets = engine.mesh.publish_targets

    def counted(topic: str) -> list[str]:
        reads.append(targets(topic))
        return reads[-1]

    engine.mesh.publish_targets = counted  # type: ignore[method-assign]
    first = [engine.publish("t", i) for i in range(5)]  # queued together: one writer batch
    await asyncio.sleep(0.05)
    gated.gate.set()
    await asyncio.wait_for(asyncio.gather(*first), 5)
    assert reads == [[mesh[1].peer_id]]
    await mesh.link([(0, 2)])  # a subscriber that came after the first batch
    await wait_until(lambda: mesh[2].peer_id in targets("t"), 5, "node 2 announcing its topics")
    second = await asyncio.wait_for(engine.publish("t", "later"), 5)
    assert len(reads) == 2 and sorted(reads[1]) == sorted([mesh[1].peer_id, mesh[2].peer_id])
    await wait_until(lambda: second in mesh[2].store.messages, 5, "the later publish at node 2")
    await mesh.close()


async def test_block_and_publisher_checks_are_asked_once_per_frame_and_afresh_for_the_next():
    asked: list[str] = []
    blocked: set[str] = set()

    def is_blocked(origin: str) -> bool:
        asked.append(origin)
        return origin in blocked

    mesh = Mesh(1)
    await mesh[0].boot(blocked=is_blocked)
    engine = mesh[0].engine
    origin = Identity.generate()
    clock = HLC(origin.peer_id)
    seq = 0

    def frame(n: int) -> dict:
        nonlocal seq
        envelopes = []
        for _ in range(n):
            seq += 1
            envelopes.append(Envelope.create(origin, seq, clock.now(), "t", seq, 8).encode())
        return {"type": "msgs", "msgs": envelopes}

    await engine.on_message("neighbour", frame(3))
    assert asked == [origin.peer_id]  # three envelopes of one origin and topic: one question
    blocked.add(origin.peer_id)  # the operator blocks it between two frames
    await engine.on_message("neighbour", frame(2))
    assert asked == [origin.peer_id] * 2 and engine.stats.rejected["blocked"] == 2
    await mesh.settle()
    assert len(mesh[0].store.messages) == 3
    await mesh.close()


async def test_a_publish_whose_push_fails_still_answers_its_caller_with_the_stored_id():
    mesh = await Mesh(2).boot()
    await mesh.link([(0, 1)])
    engine = mesh[0].engine

    def broken(*args, **kwargs):
        raise RuntimeError("push broke")

    engine._pusher.push = broken  # type: ignore[method-assign]
    message_id = await asyncio.wait_for(engine.publish("t", "stored anyway"), 5)
    assert message_id in mesh[0].store.messages
    await mesh.close()
