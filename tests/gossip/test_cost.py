"""Cost control: only verified envelopes enter the seen-cache, and duplicates skip the verify."""

import msgpack

from f0mesh.gossip import AuditEvent, Envelope

from .meshkit import Mesh, wait_until
from .test_attacks import Attacker


async def test_a_forged_copy_sent_first_does_not_censor_the_real_message():
    mesh = Mesh(1)
    await mesh.boot()
    victim = mesh[0]
    attacker = Attacker(mesh)
    await mesh.network.connect(attacker.peer_id, victim.peer_id)
    real = attacker.envelope("the real one")
    forged = msgpack.packb([real.signed, bytes(64), 0], use_bin_type=True)  # same id, bad signature
    await attacker.send(victim.peer_id, forged)
    await wait_until(lambda: victim.engine.stats.rejected["bad_signature"] == 1, 5, "the forgery refused")
    await attacker.send(victim.peer_id, real.encode())
    await wait_until(lambda: real.id in victim.store.messages, 5, "the real one delivered")
    assert [m.id for m in victim.delivered] == [real.id]
    await mesh.close()


async def test_duplicates_are_recognised_before_the_signature_is_verified():
    verified: list[str] = []

    def counting(envelope: Envelope) -> None:
        verified.append(envelope.id)
        envelope.verify()

    mesh = Mesh(1)
    await mesh[0].boot(verifier=counting)
    victim = mesh[0]
    attacker = Attacker(mesh)
    await mesh.network.connect(attacker.peer_id, victim.peer_id)
    envelope = attacker.envelope()
    for _ in range(5):
        await attacker.send(victim.peer_id, envelope.encode())
    # a copy with the verified signed bytes but another signature is the same message: no verify either
    await attacker.send(victim.peer_id, msgpack.packb([envelope.signed, bytes(64), 1], use_bin_type=True))
    await mesh.settle()
    assert verified == [envelope.id]
    assert victim.engine.stats.duplicates == 5
    assert len(victim.store.audit_for(event=AuditEvent.RECEIVED)) == 1
    assert envelope.id in attacker.acked
    await mesh.close()
