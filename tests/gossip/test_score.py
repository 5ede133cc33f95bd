"""Scores with consequences (GossipSub v1.1): graylist, publish and gossip thresholds, broken IHAVE
promises, the IHAVE budget, IDONTWANT and topic validators, on a MemoryNetwork."""

import asyncio
import os
from dataclasses import replace

import msgpack
import pytest

from f0mesh.crdt import HLC
from f0mesh.errors import ConfigError
from f0mesh.gossip import AuditEvent, Envelope, GossipParams
from f0mesh.gossip.score import PeerScoreParams, PeerScores
from f0mesh.gossip.validators import Verdict

from .meshkit import FAST, Mesh, wait_until
from .test_attacks import Attacker


class Recorder(Attacker):
    """A raw endpoint that keeps every message it is sent."""

    def __init__(self, mesh: Mesh) -> None:
        super().__init__(mesh)
        self.received: list[dict] = []

    async def on_message(self, from_peer, message):
        self.received.append(message)
        await super().on_message(from_peer, message)

    def of_type(self, kind: str) -> list[dict]:
        return [m for m in self.received if m.get("type") == kind]

    def envelope_ids(self) -> set[str]:
        return {Envelope.decode(raw).id for m in self.of_type("msgs") for raw in m["msgs"]}


def forged(attacker: Attacker) -> bytes:
    """An envelope in the attacker's name whose signature does not verify."""
    good = msgpack.unpackb(attacker.envelope(os.urandom(8).hex()).encode())
    return msgpack.packb([good[0], bytes(64), 0], use_bin_type=True)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_score_components_and_decay():
    clock = Clock()
    trust = {"good": 0.5, "other": 0.5}
    scores = PeerScores(PeerScoreParams(), lambda: trust, clock)
    assert scores.score("good") == pytest.approx(1.0)  # an even share of two is 1.0
    for _ in range(3):
        scores.invalid("bad")
    assert scores.score("bad") == pytest.approx(-90.0)  # P4: the count squared, weight -10
    scores.broken_promise("liar", 2.0)
    assert scores.score("liar") == 0.0  # within behaviour_threshold
    scores.broken_promise("liar", 3.0)
    assert scores.score("liar") == pytest.approx(-9.0)  # P7: (5 - 2) ** 2
    clock.now = 600.0  # one invalid half-life
    assert scores.score("bad") == pytest.approx(-10 * 1.5**2)
    with pytest.raises(ConfigError, match="graylist <= publish <= gossip"):
        GossipParams(graylist_threshold=-10.0, publish_threshold=-50.0)
    with pytest.raises(ConfigError, match="invalid_weight"):
        PeerScoreParams(invalid_weight=1.0)


@pytest.fixture
async def victim():
    """One engine (node 0) with an honest neighbour (node 1) and a raw endpoint linked to it."""
    mesh = Mesh(2)
    ejected: list[str] = []

    async def eject(peer: str) -> None:
        ejected.append(peer)
        await mesh.network.disconnect(mesh[0].peer_id, peer)

    await mesh[0].boot(on_offender=eject)
    await mesh[1].boot()
    await mesh.link([(0, 1)])
    attacker = Recorder(mesh)
    await mesh.network.connect(attacker.peer_id, mesh[0].peer_id)
    yield mesh, attacker, ejected
    await mesh.close()


async def test_a_peer_sending_invalid_messages_is_graylisted_then_disconnected(victim):
    mesh, attacker, ejected = victim
    engine = mesh[0].engine
    await attacker.send(mesh[0].peer_id, *(forged(attacker) for _ in range(3)))
    await wait_until(lambda: engine.stats.rejected["bad_signature"] == 3, 5, "three bad signatures")
    assert engine.score.score(attacker.peer_id) < FAST.graylist_threshold
    valid = [attacker.envelope(n) for n in range(3)]
    await attacker.send(mesh[0].peer_id, *(e.encode() for e in valid[:2]))
    await attacker.send(mesh[0].peer_id, valid[2].encode())
    await wait_until(lambda: engine.stats.graylisted == 2, 5, "both messages ignored")
    await mesh.settle()
    assert not any(e.id in mesh[0].store.messages for e in valid)
    assert not attacker.acked
    rows = [r for r in mesh[0].store.audit_for(event=AuditEvent.REJECTED) if r.reason == "graylisted"]
    assert len(rows) == 1 and rows[0].peer_id == attacker.peer_id  # audited once per heartbeat
    await engine.repair.heartbeat()
    await wait_until(lambda: attacker.peer_id not in mesh.network.neighbours(mesh[0].peer_id), 5, "cut off")
    assert ejected == [attacker.peer_id] and engine.stats.offenders == 1
    honest = await mesh[1].engine.publish("t", "still flows")
    await wait_until(lambda: mesh[0].has([honest]), 5, "honest delivery")


async def test_below_publish_and_gossip_thresholds(victim):
    mesh, attacker, ejected = victim
    engine = mesh[0].engine
    engine.score.broken_promise(attacker.peer_id, 9.5)  # (9.5 - 2) ** 2 = 56: below publish, above graylist
    assert FAST.graylist_threshold < engine.score.score(attacker.peer_id) < FAST.publish_threshold
    own = await engine.publish("t", "not to you")
    await wait_until(lambda: mesh[1].has([own]), 5, "the honest neighbour has it")
    await mesh.settle()
    assert own not in attacker.envelope_ids()
    offered = attacker.envelope("offered")
    await attacker.transport.send(mesh[0].peer_id, {"type": "ihave", "ids": [offered.id], "fresh": True})
    await wait_until(lambda: engine.stats.ihave_ignored == 1, 5, "IHAVE ignored")
    assert not attacker.of_type("iwant")
    await engine.repair.heartbeat()  # a recent id to offer, but not to a peer below gossip threshold
    digests = [m for m in attacker.of_type("ihave") if m["ids"]]  # subscription control has no ids
    assert not digests and not ejected


async def test_broken_ihave_promises_lower_the_advertisers_score():
    mesh = Mesh(1)
    await mesh[0].boot(params=replace(FAST, iwant_timeout_s=0.05))
    engine = mesh[0].engine
    attacker = Recorder(mesh)
    await mesh.network.connect(attacker.peer_id, mesh[0].peer_id)
    for round_ in range(4):
        never = [attacker.envelope(f"never {round_} {n}").id for n in range(5)]
        await attacker.transport.send(mesh[0].peer_id, {"type": "ihave", "ids": never, "fresh": True})
        await wait_until(lambda r=round_: len(attacker.of_type("iwant")) == r + 1, 5, "IWANT")
        await asyncio.sleep(0.06)  # the want expires (iwant_timeout_s), nothing came
        await engine.repair.heartbeat()
    assert engine.stats.broken_promises == 4  # one tracked id per IWANT
    assert engine.score.counters(attacker.peer_id)["broken_promises"] == pytest.approx(4, rel=0.01)
    assert engine.score.score(attacker.peer_id) < 0
    await mesh.close()


async def test_ihave_per_neighbour_per_heartbeat_is_capped():
    """Each IHAVE costs a store lookup: past max_ihave_messages in one heartbeat they are ignored."""
    mesh = Mesh(1)
    await mesh[0].boot(params=replace(FAST, max_ihave_messages=10, max_ihave_ids=5000))
    engine = mesh[0].engine
    attacker = Recorder(mesh)
    await mesh.network.connect(attacker.peer_id, mesh[0].peer_id)
    for n in range(15):
        message = {"type": "ihave", "ids": [attacker.envelope(n).id], "fresh": True}
        await attacker.transport.send(mesh[0].peer_id, message)
    await mesh.settle()
    assert len(attacker.of_type("iwant")) == 10 and engine.stats.ihave_ignored == 5
    await engine.repair.heartbeat()  # a new heartbeat, a new budget
    await attacker.transport.send(
        mesh[0].peer_id, {"type": "ihave", "ids": [attacker.envelope(99).id], "fresh": True}
    )
    await mesh.settle()
    assert len(attacker.of_type("iwant")) == 11
    await mesh.close()


async def test_idontwant_for_large_envelopes():
    """A large first receipt is announced to the mesh peers it is not pushed to (to those it is, the
    copy says it a moment later on the same link); a push skips a neighbour that said IDONTWANT."""
    mesh = Mesh(1)
    await mesh[0].boot()
    sender, listener = Recorder(mesh), Recorder(mesh)
    for raw in (sender, listener):
        await mesh.network.connect(raw.peer_id, mesh[0].peer_id)
    first, second = (sender.envelope("x" * FAST.idontwant_min_bytes) for _ in range(2))
    await sender.send(mesh[0].peer_id, first.encode())
    await wait_until(lambda: first.id in listener.envelope_ids(), 5, "first pushed on")
    big = "y" * FAST.idontwant_min_bytes
    last_hop = Envelope.create(sender.identity, 99, HLC(sender.peer_id).now(), "t", big, 1)
    await sender.send(mesh[0].peer_id, last_hop.forwarded())  # at its ttl: pushed to nobody
    await wait_until(lambda: mesh[0].has([last_hop.id]), 5, "last hop stored")
    await mesh.settle()
    dontwant = [m.get("dontwant") for m in listener.of_type("ack")]
    assert [last_hop.id] in dontwant and [first.id] not in dontwant
    assert last_hop.id not in listener.envelope_ids()
    assert not [m for m in sender.of_type("ack") if "dontwant" in m]  # not told to the one it came from
    await listener.transport.send(mesh[0].peer_id, {"type": "ack", "ids": [], "dontwant": [second.id]})
    await mesh.settle()
    await sender.send(mesh[0].peer_id, second.encode())
    await wait_until(lambda: mesh[0].has([second.id]), 5, "second stored")
    await mesh.settle()
    assert second.id not in listener.envelope_ids() and mesh[0].engine.stats.idontwant_skipped == 1
    await mesh.close()


async def test_topic_validators_accept_reject_ignore():
    mesh = Mesh(1)
    await mesh[0].boot(params=replace(FAST, validator_timeout_s=0.2, validator_concurrency=1))
    engine = mesh[0].engine
    attacker = Recorder(mesh)
    await mesh.network.connect(attacker.peer_id, mesh[0].peer_id)
    release = asyncio.Event()

    async def judge(message):
        if message.payload == "slow":
            await release.wait()
        return {"ok": Verdict.ACCEPT, "bad": Verdict.REJECT}.get(message.payload, Verdict.IGNORE)

    engine.validator("v", judge)
    ok, bad, meh, slow = (attacker.envelope(p, topic="v") for p in ("ok", "bad", "meh", "slow"))
    for envelope in (ok, bad, meh):
        await attacker.send(mesh[0].peer_id, envelope.encode())
    await wait_until(lambda: mesh[0].has([ok.id]), 5, "accepted message stored")
    await wait_until(lambda: engine.stats.rejected["invalid"] == 1, 5, "reject audited")
    await wait_until(lambda: engine.stats.validation_ignored == 1, 5, "ignore counted")
    await mesh.settle()
    assert bad.id not in mesh[0].store.messages and meh.id not in mesh[0].store.messages
    assert ok.id in attacker.acked and bad.id not in attacker.acked and meh.id not in attacker.acked
    assert [f for f in mesh[0].feedback if f == (attacker.peer_id, "malformed")] == [
        (attacker.peer_id, "malformed")
    ]
    assert engine.score.counters(attacker.peer_id)["invalid"] == pytest.approx(1, rel=0.01)
    # one validation at a time: a second message meanwhile is ignored (throttled); the slow one times out
    busy = attacker.envelope("ok", topic="v")
    await attacker.send(mesh[0].peer_id, slow.encode())
    await wait_until(lambda: engine.validators.running == 1, 5, "slow validation running")
    await attacker.send(mesh[0].peer_id, busy.encode())
    await wait_until(lambda: engine.validators.throttled == 1, 5, "throttled")
    await wait_until(lambda: engine.validators.timed_out == 1, 5, "timed out")
    await mesh.settle()
    assert slow.id not in mesh[0].store.messages and busy.id not in mesh[0].store.messages
    await attacker.send(mesh[0].peer_id, busy.encode())  # ignored, not remembered: a later copy is judged
    await wait_until(lambda: mesh[0].has([busy.id]), 5, "judged again and stored")
    assert engine.score.counters(attacker.peer_id)["invalid"] == pytest.approx(1, rel=0.01)
    await mesh.close()


def test_thresholds_are_flags_and_a_bad_order_is_one_error_naming_the_flag(tmp_path):
    from f0mesh.flags import node_config

    assert node_config(tmp_path, {"--gossip-graylist": -200.0}).gossip.graylist_threshold == -200.0
    with pytest.raises(ConfigError, match="--gossip-graylist"):
        node_config(tmp_path, {"--gossip-graylist": -5.0})


async def test_per_origin_seqs_are_capped_and_the_least_trusted_go_first(monkeypatch):
    """#20: the per-origin table is capped; invented origins push each other out, not a trusted one."""
    from f0mesh.gossip import engine as engine_module
    from f0mesh.identity import Identity

    monkeypatch.setattr(engine_module, "MAX_TRACKED_ORIGINS", 8)
    mesh = Mesh(2)
    trusted = mesh[1]
    await mesh[0].boot(scores_provider=lambda: {trusted.peer_id: 0.5})
    await trusted.boot()
    await mesh.link([(0, 1)])
    engine = mesh[0].engine
    engine.score.refresh()
    first = await trusted.engine.publish("t", "trusted first")
    await wait_until(lambda: mesh[0].has([first]), 5, "trusted origin heard")
    relay = Recorder(mesh)
    await mesh.network.connect(relay.peer_id, mesh[0].peer_id)
    invented = []
    for n in range(20):
        relay.identity = Identity.generate()
        relay.peer_id, relay.seq = relay.identity.peer_id, 0
        invented.append(relay.envelope(n))
    await relay.send(mesh[0].peer_id, *(e.encode() for e in invented))
    await wait_until(lambda: mesh[0].has([invented[-1].id]), 5, "invented origins heard")
    assert engine.highest_seq(trusted.peer_id) == 1
    assert sum(engine.highest_seq(e.origin) > 0 for e in invented) == 7
    await mesh.close()
