"""A received audit row says how its first copy came when not by push: the bench and an operator
tell a delivery that waited for repair from a slow push by it."""

from f0mesh.gossip import AuditEvent
from f0mesh.gossip.engine import VIA_CATCHUP, VIA_IWANT

from .meshkit import Mesh, wait_until
from .test_eager import NO_RETRY, detached_while_published


async def test_received_rows_name_push_iwant_and_catch_up():
    mesh = Mesh(3, params=NO_RETRY)
    await mesh.boot()
    await mesh.link([(0, 1), (1, 2)])
    middle, far = mesh[1], mesh[2]
    [young] = await detached_while_published(mesh, 1, 1)
    await mesh[0].engine.repair.heartbeat()  # node 1 IWANTs it, then pushes it on to node 2
    await wait_until(lambda: far.has([young]), 5, "the repaired copy pushed on")
    [by_iwant] = middle.store.audit_for(young, AuditEvent.RECEIVED)
    [by_push] = far.store.audit_for(young, AuditEvent.RECEIVED)
    assert (by_iwant.reason, by_push.reason) == (VIA_IWANT, None)

    await mesh.network.disconnect(mesh[0].peer_id, middle.peer_id)
    [later] = [await mesh[0].engine.publish("t", "while apart")]
    await mesh.network.connect(mesh[0].peer_id, middle.peer_id)
    await wait_until(lambda: middle.has([later]), 5, "catch-up")
    [by_page] = middle.store.audit_for(later, AuditEvent.RECEIVED)
    assert by_page.reason == VIA_CATCHUP
    await mesh.close()
