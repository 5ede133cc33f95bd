"""A stamp at the edge of the HLC bounds (issue 18): the clock keeps working, and a neighbour is held
responsible only for what no honest clock sends."""

import time

from f0mesh.crdt import HLCTimestamp
from f0mesh.crdt.bounds import LOGICAL_BOUND
from f0mesh.gossip import AuditEvent, Envelope, Reason

from .meshkit import FAST, wait_until
from .test_attacks import ring  # noqa: F401  (a fixture)


async def test_a_stamp_a_little_past_the_drift_bound_is_refused_without_blame(ring) -> None:  # noqa: F811
    """What an honest neighbour sends once a stranger pushed its clock to the bound and clocks differ."""
    mesh, attacker, _ = ring
    ahead = attacker.envelope(skew_ms=int((FAST.max_clock_skew_s + 5) * 1000))
    await attacker.send(mesh[0].peer_id, ahead.encode())
    await wait_until(lambda: mesh[0].engine.stats.rejected[Reason.CLOCK_SKEW.value] == 1, 5, "the refusal")
    await mesh.settle()
    rows = [r for r in mesh[0].store.audit_for(event=AuditEvent.REJECTED) if r.peer_id == attacker.peer_id]
    assert [(r.message_id, r.reason) for r in rows] == [(ahead.id, "clock_skew")]
    assert not [event for peer, event in mesh[0].feedback if peer == attacker.peer_id], mesh[0].feedback


async def test_the_clock_keeps_issuing_after_adopting_a_stamp_at_the_logical_bound(ring) -> None:  # noqa: F811
    mesh, attacker, _ = ring
    attacker.seq += 1
    stamp = HLCTimestamp(int(time.time() * 1000) + 55_000, LOGICAL_BOUND, attacker.peer_id)
    edge = Envelope.create(attacker.identity, attacker.seq, stamp, "t", "edge", 8)
    await attacker.send(mesh[0].peer_id, edge.encode())
    await mesh.settle()
    assert mesh[0].engine.hlc.last is not None and mesh[0].engine.hlc.last > stamp
    for i in range(3):
        await mesh[0].engine.publish("t", f"after {i}")
    assert mesh[0].engine.hlc.now().logical <= LOGICAL_BOUND
