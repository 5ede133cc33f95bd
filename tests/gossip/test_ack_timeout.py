"""Retries on a busy host: the ack timeout adapts to each neighbour's ack delay (RFC 6298), and a
neighbour known to hold the message is neither retried nor chosen as a replacement; crossed copies
stand for each other's acks."""

from dataclasses import replace

from f0mesh.gossip import AuditEvent, GossipParams
from f0mesh.gossip.push import MAX_ACK_TIMEOUT_FACTOR, AckTimer, Pusher
from f0mesh.gossip.stats import GossipStats

from .meshkit import FAST, Endpoint, Mesh, wait_until
from .test_push import ONE


def test_the_ack_timeout_follows_a_slow_neighbour_and_stays_capped():
    timer = AckTimer(0.1)
    assert timer.timeout(2.0) == 2.0  # a quick neighbour keeps the configured floor
    for _ in range(20):
        timer.observe(3.0)
    assert 3.0 < timer.timeout(2.0) < 2.0 * MAX_ACK_TIMEOUT_FACTOR
    for _ in range(50):
        timer.observe(600.0)
    assert timer.timeout(2.0) == 2.0 * MAX_ACK_TIMEOUT_FACTOR


class Quiet:
    def neighbours(self):
        return ["a", "b"]

    async def send(self, peer_id, message):
        pass


async def test_a_neighbour_whose_acks_are_late_is_not_retried_at_the_floor():
    params = GossipParams(ack_timeout_s=0.2)
    now = [100.0]
    pusher = Pusher(
        Quiet(), params, GossipStats(), lambda excluded, k, topic: [], lambda *a: None, clock=lambda: now[0]
    )
    for n in range(8):  # "a" has acked eight sends, each a second after it was sent
        message_id = f"m{n}"
        pusher.push(message_id, b"x", AuditEvent.SENT, (), ["a"], "t")
        now[0] += 1.0
        pusher.on_ack("a", [message_id])
    pusher.push("late", b"x", AuditEvent.SENT, (), ["a", "b"], "t")
    # past the floor for both; only "b", which never showed a slow ack, is overdue
    assert pusher.expired(now[0] + 0.5) == [("late", "b")]
    await pusher.stop()


def _pusher(now: list[float], params: GossipParams | None = None) -> Pusher:
    return Pusher(
        Quiet(),
        params or GossipParams(ack_timeout_s=1.0),
        GossipStats(),
        lambda excluded, k, topic: [],
        lambda *a: None,
        clock=lambda: now[0],
    )


async def test_overdue_sends_come_out_oldest_first_and_only_once():
    now = [0.0]
    pusher = _pusher(now)
    for n in range(5):
        pusher.push(f"m{n}", b"x", AuditEvent.SENT, (), ["a", "b"], "t")
        now[0] += 0.1
    pusher.crossed("a", "m1")  # settled (as an ack, without a delay sample): never overdue
    pusher.crossed("b", "m3")
    assert pusher.expired(0.95) == []
    assert pusher.expired(1.25) == [("m0", "a"), ("m2", "a"), ("m0", "b"), ("m1", "b"), ("m2", "b")]
    assert pusher.expired(1.25) == []  # what a sweep reported is not reported again
    assert pusher.expired(5.0) == [("m3", "a"), ("m4", "a"), ("m4", "b")]
    assert pusher._starts == {}  # every entry read and dropped: nothing kept for acked sends
    await pusher.stop()


async def test_a_send_handed_to_the_link_restarts_its_clock():
    """Time queued in the outbox is not held against the neighbour: the overdue test reads the
    restarted clock, not the first entry, for a send whose batch left later."""
    now = [0.0]
    pusher = _pusher(now)
    pusher.push("early", b"x", AuditEvent.SENT, (), ["a"], "t")
    pusher.push("queued", b"x", AuditEvent.SENT, (), ["a"], "t")
    now[0] = 0.8
    pusher._sent("a", ["queued"])  # its batch left the outbox only now
    assert pusher.expired(1.2) == [("early", "a")]
    assert pusher.expired(1.7) == []
    assert pusher.expired(1.85) == [("queued", "a")]
    await pusher.stop()


class Echo(Endpoint):
    """A neighbour that sends every envelope straight back and never acknowledges (nor announces
    subscriptions, as the wire before topics did)."""

    def __init__(self, mesh: Mesh, me: str) -> None:
        self.mesh, self.me = mesh, me
        self.received = 0
        self.acked: list[str] = []

    async def on_message(self, from_peer, message):
        if message.get("type") == "ack":
            self.acked += message["ids"]
        if message.get("type") == "msgs":
            self.received += len(message["msgs"])
            await self.mesh.network._send(self.me, from_peer, {"type": "msgs", "msgs": message["msgs"]})


async def test_a_neighbour_that_sent_the_message_back_is_not_retried_elsewhere():
    mesh = Mesh(3)
    echo_id = mesh[1].peer_id
    await mesh[0].boot(params=ONE, scores_provider=lambda: {echo_id: 1.0})
    echo = Echo(mesh, echo_id)
    mesh.network.attach(echo_id, echo)
    await mesh[2].boot()
    await mesh.link([(0, 1), (0, 2)])
    origin = mesh[0]
    message_id = await origin.engine.publish("t", "hello")
    await wait_until(lambda: origin.engine.stats.duplicates == 1, 5, "the echo's copy")
    await mesh.settle()
    stats = origin.engine.stats
    assert echo.received == 1 and origin.engine.pending_pushes == 0
    # it holds the message (it sent a copy, which settles the send like an ack): no timeout, no
    # retry, no duplicate for node 2, not undelivered
    assert (stats.ack_timeouts, stats.retries, stats.undelivered) == (0, 0, 0)
    assert echo.acked == [message_id]  # the wire before topics knows no holders: still acked
    assert message_id not in mesh[2].store.messages
    await mesh.close()


async def test_crossed_copies_stand_for_each_others_acks():
    """0 publishes to 1 and 2, which push to each other: each copy 1 and 2 exchange is the ack of the
    other's, so only the two first receipts are acked (the old code sent four acks), nothing waits
    for a timeout (30 s here), and every node holds the message."""
    mesh = await Mesh(3, params=replace(FAST, ack_timeout_s=30.0)).boot()
    await mesh.link([(0, 1), (0, 2), (1, 2)])
    await mesh.settle()
    before = [node.engine.stats.sent_by_type["ack"] for node in mesh.nodes]
    message_id = await mesh[0].engine.publish("t", "hello")
    await wait_until(lambda: mesh.missing([message_id]) == 0, 5, "every node to hold the message")
    await mesh.settle()
    await wait_until(lambda: all(n.engine.pending_pushes == 0 for n in mesh.nodes), 5, "no push pending")
    stats = [node.engine.stats for node in mesh.nodes]
    assert [s.duplicates for s in stats] == [0, 1, 1]  # the crossing happened
    acks = [s.sent_by_type["ack"] - b for s, b in zip(stats, before, strict=True)]
    assert acks == [0, 1, 1]
    assert sum(s.ack_timeouts + s.retries for s in stats) == 0
    assert mesh[0].engine.stats.acked_sent == 2
    for i, other in ((1, 2), (2, 1)):  # the settled send is audited like an acked one
        await mesh[i].engine.flush()
        forwarded = {r.peer_id for r in mesh[i].store.audit_for(message_id, AuditEvent.FORWARDED)}
        assert forwarded == {mesh[other].peer_id}
    await mesh.close()
