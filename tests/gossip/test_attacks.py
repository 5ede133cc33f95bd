"""Hostile neighbours: every refusal is audited with its reason, and honest traffic still flows."""

import time

import msgpack
import pytest

from f0mesh.crdt import HLC
from f0mesh.gossip import AuditEvent, Envelope, Reason
from f0mesh.identity import Identity

from .meshkit import FAST, Endpoint, Mesh, flat_limiter, wait_until


class Attacker(Endpoint):
    """A raw endpoint on the network: it speaks the wire protocol directly, and records acks."""

    def __init__(self, mesh: Mesh) -> None:
        self.identity = Identity.generate()
        self.peer_id = self.identity.peer_id
        self.transport = mesh.network.transport(self.peer_id)
        self.acked: set[str] = set()
        self.seq = 0
        mesh.network.attach(self.peer_id, self)

    async def on_message(self, from_peer, message):
        if message.get("type") == "ack":
            self.acked.update(message["ids"])

    def envelope(self, payload="x", *, skew_ms: int = 0, topic: str = "t") -> Envelope:
        self.seq += 1
        hlc = HLC(self.peer_id, clock=lambda: int(time.time() * 1000) + skew_ms)
        return Envelope.create(self.identity, self.seq, hlc.now(), topic, payload, 8)

    async def send(self, to: str, *raws: bytes) -> None:
        await self.transport.send(to, {"type": "msgs", "msgs": list(raws)})


class Clock:
    def __init__(self, offset: float = 0.0) -> None:
        self.offset = offset

    def __call__(self) -> float:
        return time.time() + self.offset


@pytest.fixture
async def ring():
    """Four honest engines in a ring and an attacker linked to node 0 (the victim)."""
    mesh = Mesh(4)
    victim_clock = Clock()
    await mesh[0].boot(clock=victim_clock)
    for node in mesh.nodes[1:]:
        await node.boot()
    await mesh.link([(0, 1), (1, 2), (2, 3), (3, 0)])
    attacker = Attacker(mesh)
    await mesh.network.connect(attacker.peer_id, mesh[0].peer_id)
    yield mesh, attacker, victim_clock
    await mesh.close()


async def refused(mesh: Mesh, attacker: Attacker, reason: Reason, count: int = 1):
    """The victim's audit rows refusing the attacker for this reason, once all are committed."""
    victim = mesh[0]
    await wait_until(lambda: victim.engine.stats.rejected[reason.value] >= count, 5, f"{reason} rejection")
    await mesh.settle()
    rows = [r for r in victim.store.audit_for(event=AuditEvent.REJECTED) if r.reason == reason.value]
    assert len(rows) == count and all(r.peer_id == attacker.peer_id for r in rows)
    assert (attacker.peer_id, _trust_event(reason)) in victim.feedback
    return rows


def _trust_event(reason: Reason) -> str:
    return {
        Reason.BAD_SIGNATURE: "invalid_signature",
        Reason.REPLAY: "replay",
        Reason.CLOCK_SKEW: "replay",
        Reason.RATE_LIMITED: "rate_limited",
        Reason.TOO_LARGE: "malformed",
        Reason.MALFORMED: "malformed",
    }[reason]


def stored_anywhere(mesh: Mesh, message_id: str) -> bool:
    return any(message_id in node.store.messages for node in mesh.nodes)


async def test_forged_signature_in_an_honest_peers_name(ring):
    mesh, attacker, _ = ring
    honest = mesh[2].identity
    fields = [1, honest.peer_id, 99, int(time.time() * 1000), 0, "t", 8, {"pay": "me"}]
    signed = msgpack.packb(fields, use_bin_type=True)
    forged = msgpack.packb([signed, attacker.identity.sign(signed), 0], use_bin_type=True)
    forged_id = Envelope.decode(forged).id
    await attacker.send(mesh[0].peer_id, forged)
    [row] = await refused(mesh, attacker, Reason.BAD_SIGNATURE)
    assert row.message_id == forged_id
    assert not stored_anywhere(mesh, forged_id) and forged_id not in attacker.acked


async def test_envelope_older_than_the_replay_window(ring):
    mesh, attacker, _ = ring
    stale = attacker.envelope(skew_ms=-int((FAST.replay_window_s + 5) * 1000))
    await attacker.send(mesh[0].peer_id, stale.encode())
    [row] = await refused(mesh, attacker, Reason.REPLAY)
    assert row.message_id == stale.id and not stored_anywhere(mesh, stale.id)


async def test_replay_of_a_genuine_envelope_after_the_window_has_passed(ring):
    mesh, attacker, victim_clock = ring
    genuine = await mesh[2].engine.publish("t", "original")
    await wait_until(lambda: mesh[0].has([genuine]), 5, "delivery")
    captured = Envelope.decode(mesh[0].store.messages[genuine].raw)
    await attacker.send(mesh[0].peer_id, captured.forwarded())  # within the window: a duplicate
    # a duplicate (not acked: the victim pushed it the same message, whose copy stands for the ack)
    duplicate = AuditEvent.DUPLICATE
    await wait_until(
        lambda: any(r.peer_id == attacker.peer_id for r in mesh[0].store.audit_for(genuine, duplicate)),
        5,
        "the attacker's duplicate",
    )
    victim_clock.offset = FAST.replay_window_s + 1  # the window has passed for the victim
    await attacker.send(mesh[0].peer_id, captured.forwarded())
    [row] = await refused(mesh, attacker, Reason.REPLAY)
    assert row.message_id == genuine
    assert len(mesh[0].store.audit_for(genuine, AuditEvent.RECEIVED)) == 1


async def test_payload_over_the_limit(ring):
    mesh, attacker, _ = ring
    big = attacker.envelope("x" * (FAST.max_message_bytes + 1))
    await attacker.send(mesh[0].peer_id, big.encode())
    [row] = await refused(mesh, attacker, Reason.TOO_LARGE)
    assert row.message_id is None  # refused before it was parsed
    assert not stored_anywhere(mesh, big.id)


async def test_hlc_too_far_ahead(ring):
    mesh, attacker, _ = ring
    ahead = attacker.envelope(skew_ms=int((FAST.max_clock_skew_s + 60) * 1000))
    await attacker.send(mesh[0].peer_id, ahead.encode())
    [row] = await refused(mesh, attacker, Reason.CLOCK_SKEW)
    assert row.message_id == ahead.id and not stored_anywhere(mesh, ahead.id)
    assert mesh[0].engine.hlc.last is None or mesh[0].engine.hlc.last.wall_ms < ahead.hlc.wall_ms


async def test_garbage_and_unknown_message_types(ring):
    mesh, attacker, _ = ring
    await attacker.send(mesh[0].peer_id, b"\x93garbage")
    await attacker.transport.send(mesh[0].peer_id, {"type": "graft"})
    await attacker.transport.send(mesh[0].peer_id, {"type": "ihave", "ids": ["../../etc/passwd"]})
    rows = await refused(mesh, attacker, Reason.MALFORMED, count=3)
    assert all(r.message_id is None for r in rows)


async def test_flooding_neighbour_is_cut_to_its_limit_while_honest_messages_get_through():
    rate, burst, steps, step_s = 50.0, 50.0, 20, 0.1
    limiter_time = [0.0]  # the limiters run on simulated time, advanced step by step
    mesh = Mesh(4)
    await mesh[0].boot(
        neighbour_limiter=flat_limiter(rate, burst, clock=lambda: limiter_time[0]),
        origin_limiter=flat_limiter(rate, burst, clock=lambda: limiter_time[0]),
    )
    for node in mesh.nodes[1:]:
        await node.boot()
    await mesh.link([(0, 1), (1, 2), (2, 3), (3, 0)])
    attacker = Attacker(mesh)
    await mesh.network.connect(attacker.peer_id, mesh[0].peer_id)
    victim = mesh[0]

    per_step = int(10 * rate * step_s)  # ten times the sustained limit
    flood_ids: list[str] = []
    honest_ids: list[str] = []
    for step in range(steps):
        envelopes = [attacker.envelope({"junk": step}) for _ in range(per_step)]
        flood_ids.extend(e.id for e in envelopes)
        for start in range(0, per_step, 25):
            await attacker.send(victim.peer_id, *(e.encode() for e in envelopes[start : start + 25]))
        honest_ids.append(await mesh[1 + step % 3].engine.publish("news", {"step": step}))
        await mesh.network.settle(10, quiet_s=0.01)
        limiter_time[0] += step_s

    await wait_until(lambda: mesh.missing(honest_ids) == 0, 10, "honest messages everywhere")
    await mesh.settle()
    accepted = [i for i in flood_ids if i in victim.store.messages]
    elapsed = (steps - 1) * step_s
    assert abs(len(accepted) - (burst + rate * elapsed)) <= 1  # the burst, then exactly the sustained rate
    limited = [r for r in victim.store.audit_for(event=AuditEvent.REJECTED) if r.reason == "rate_limited"]
    assert len(limited) == len(flood_ids) - len(accepted)
    assert {r.peer_id for r in limited} == {attacker.peer_id}
    assert victim.feedback.count((attacker.peer_id, "rate_limited")) == len(limited)
    assert set(attacker.acked) == set(accepted)
    await mesh.close()
