"""A send counts once acknowledged; silence or a dead link sends the envelope elsewhere."""

from dataclasses import replace

from f0mesh.gossip import AuditEvent, GossipParams, LinkClosedError, MemoryTransport

from .meshkit import Endpoint, Mesh, wait_until


class Sink(Endpoint):
    """A neighbour that takes messages and never acknowledges them."""

    def __init__(self) -> None:
        self.batches: list[list[bytes]] = []

    @property
    def envelopes(self) -> list[bytes]:
        return [raw for batch in self.batches for raw in batch]

    async def on_message(self, from_peer, message):
        if message.get("type") == "msgs":
            self.batches.append(message["msgs"])


ONE = GossipParams(
    d=1,
    d_lo=1,
    d_hi=1,
    flood_publish=False,
    floor_weight=0.0,
    ack_timeout_s=0.2,
    repair_interval_s=3600.0,
    heartbeat_s=3600.0,
)


async def star(sinks: int, engines: int, params: GossipParams = ONE, **boot) -> tuple[Mesh, list[Sink]]:
    """Node 0 linked to silent neighbours (nodes 1..sinks, preferred by trust) and to real engines.

    The engines score 0, and with no floor they are chosen only when no silent neighbour is left.
    """
    mesh = Mesh(1 + sinks + engines)
    scores = {node.peer_id: 1.0 for node in mesh.nodes[1 : 1 + sinks]}
    await mesh[0].boot(params=params, scores_provider=lambda: scores, **boot)
    silent = []
    for node in mesh.nodes[1 : 1 + sinks]:
        silent.append(Sink())
        mesh.network.attach(node.peer_id, silent[-1])
    for node in mesh.nodes[1 + sinks :]:
        await node.boot()
    await mesh.link([(0, i) for i in range(1, len(mesh.nodes))])
    return mesh, silent


async def test_neighbour_that_never_acks_causes_a_send_to_another_peer():
    mesh, [sink] = await star(sinks=1, engines=1)
    origin, honest = mesh[0], mesh[2]
    message_id = await origin.engine.publish("t", "hello")
    await wait_until(lambda: origin.engine.stats.acked_sent == 1, 5, "ack from the second peer")
    await mesh.settle()
    assert len(sink.envelopes) == 1  # the trusted-but-silent neighbour got it first
    assert message_id in honest.store.messages
    assert [r.peer_id for r in origin.store.audit_for(message_id, AuditEvent.SENT)] == [honest.peer_id]
    stats = origin.engine.stats
    assert (stats.ack_timeouts, stats.retries, stats.undelivered) == (1, 1, 0)
    await mesh.close()


async def test_a_send_that_raises_is_retried_at_once_elsewhere():
    mesh = Mesh(3)
    dead = mesh[1].peer_id

    class DeadLink(MemoryTransport):
        async def send(self, peer_id, message):
            if peer_id == dead:
                raise LinkClosedError("ICE failed")
            await super().send(peer_id, message)

    await mesh[0].boot(
        params=replace(ONE, ack_timeout_s=30.0),
        scores_provider=lambda: {dead: 1.0},
        transport=DeadLink(mesh.network, mesh[0].peer_id),
    )
    await mesh[2].boot()
    await mesh.link([(0, 1), (0, 2)])
    origin = mesh[0]
    message_id = await origin.engine.publish("t", "hello")
    await wait_until(lambda: origin.engine.stats.acked_sent == 1, 5, "ack well before the 30 s ack timeout")
    assert message_id in mesh[2].store.messages
    assert (origin.engine.stats.send_errors, origin.engine.stats.ack_timeouts) == (1, 0)
    await mesh.close()


async def test_a_neighbour_going_down_fails_its_outstanding_sends_over_to_another():
    mesh, [sink] = await star(sinks=1, engines=1, params=replace(ONE, ack_timeout_s=30.0))
    origin = mesh[0]
    message_id = await origin.engine.publish("t", "hello")
    await wait_until(lambda: len(sink.envelopes) == 1, 5, "first send")
    await mesh.network.disconnect(origin.peer_id, mesh[1].peer_id)
    await wait_until(lambda: message_id in mesh[2].store.messages, 5, "resend after the link went down")
    assert origin.engine.stats.ack_timeouts == 0
    await mesh.close()


async def test_retries_are_bounded():
    mesh, sinks = await star(sinks=3, engines=0, params=replace(ONE, max_retries=1))
    await mesh[0].engine.publish("t", "into the void")
    await wait_until(lambda: mesh[0].engine.stats.undelivered == 1, 5, "giving up")
    await mesh.settle()
    assert sum(len(s.envelopes) for s in sinks) == 2  # the first try and one retry, not three
    assert mesh[0].engine.stats.retries == 1 and mesh[0].engine.pending_pushes == 0
    assert not mesh[0].store.audit_for(event=AuditEvent.SENT)
    await mesh.close()


async def test_envelopes_queued_for_one_neighbour_travel_batched():
    mesh, [sink] = await star(
        sinks=1, engines=0, params=replace(ONE, batch_linger_s=0.05, batch_max_envelopes=4)
    )
    for n in range(10):
        await mesh[0].engine.publish("t", n)
    await mesh.settle()
    assert len(sink.envelopes) == 10
    assert len(sink.batches) < 10 and max(len(b) for b in sink.batches) <= 4
    await mesh.close()
