"""Eager push to every push peer, the heartbeat's IHAVE, and repaired copies pushed on."""

from dataclasses import replace

import pytest

from f0mesh.gossip import AuditEvent, Envelope
from f0mesh.identity import Identity

from .meshkit import FAST, Endpoint, Mesh, flat_limiter, regular_topology, wait_until
from .test_push import Sink
from .test_score import Recorder

NO_RETRY = replace(FAST, max_retries=0)


async def test_a_message_reaches_every_node_by_push_alone_where_each_node_has_d_links():
    n = 24
    mesh = Mesh(n, seed=7, params=replace(NO_RETRY, d=6, d_lo=4, d_hi=12))
    await mesh.boot()
    await mesh.link(regular_topology(n, 6, seed=7))
    ids = [await mesh[i].engine.publish("t", i) for i in (0, 9, 17)]
    await mesh.settle()
    assert mesh.missing(ids) == 0
    assert all(node.engine.stats.iwant_sent == 0 for node in mesh.nodes)  # no repair was needed
    origin = mesh[0]
    sent_to = {r.peer_id for r in origin.store.audit_for(ids[0], AuditEvent.SENT)}
    assert sent_to == set(origin.engine._transport.neighbours())  # own messages go to every link
    await mesh.close()


async def test_a_leaf_no_neighbour_picked_is_repaired_within_a_heartbeat_then_pushed_to():
    # hub 0 has six trusted neighbours and the leaf 7, whom no floor lets trust pick
    mesh = Mesh(8)
    params = replace(NO_RETRY, d=6, d_lo=6, d_hi=12, floor_weight=0.0, heartbeat_s=0.05)
    scores = {node.peer_id: 1.0 for node in mesh.nodes[:7]}
    for node in mesh.nodes:
        await node.boot(params=params, scores_provider=lambda: scores)
    await mesh.link([(0, i) for i in range(1, 8)])
    hub, leaf = mesh[0], mesh[7]
    first = await mesh[1].engine.publish("t", "first")
    await wait_until(lambda: leaf.has([first]), 5, "the leaf repaired by the heartbeat's IHAVE")
    assert leaf.engine.stats.iwant_sent == 1
    # the repaired copy is pushed on, which builds the leaf's mesh for the topic: it GRAFTs the hub
    await wait_until(lambda: leaf.peer_id in hub.engine.mesh.meshes["t"], 5, "the leaf in the hub's mesh")
    second = await mesh[2].engine.publish("t", "second")
    await wait_until(lambda: leaf.has([second]), 5, "the second message")
    await mesh.settle()
    assert leaf.engine.stats.iwant_sent == 1  # pushed this time
    await mesh.close()


async def detached_while_published(mesh: Mesh, index: int, count: int) -> list[str]:
    """Node 0 publishes while node ``index``'s engine hears nothing (its links stay up)."""
    mesh.network.detach(mesh[index].peer_id)
    ids = [await mesh[0].engine.publish("t", n) for n in range(count)]
    await mesh.settle()
    mesh.network.attach(mesh[index].peer_id, mesh[index].engine)
    return ids


async def test_a_copy_answering_a_periodic_digest_is_pushed_on_and_a_catch_up_page_is_not():
    mesh = Mesh(3, params=NO_RETRY)
    await mesh.boot()
    await mesh.link([(0, 1), (1, 2)])
    middle, far = mesh[1], mesh[2]
    [young] = await detached_while_published(mesh, 1, 1)
    await mesh[0].engine.repair.heartbeat()  # IHAVE marked fresh; node 1 asks, gets it, pushes it on
    await wait_until(lambda: far.has([young]), 5, "the repaired copy pushed on to node 2")
    await mesh.settle()
    assert middle.engine.stats.repaired_forwarded == 1 and far.engine.stats.iwant_sent == 0
    [received] = far.store.audit_for(young, AuditEvent.RECEIVED)
    assert received.peer_id == middle.peer_id

    await mesh.network.disconnect(mesh[0].peer_id, middle.peer_id)
    later = [await mesh[0].engine.publish("t", "while apart")]
    await mesh.network.connect(mesh[0].peer_id, middle.peer_id)  # catch-up page: pairwise
    await wait_until(lambda: middle.has(later), 5, "catch-up")
    await mesh.settle()
    assert not far.has(later) and middle.engine.stats.repaired_forwarded == 1
    await mesh.close()


async def test_answers_to_a_periodic_digest_pass_the_per_origin_limit():
    mesh = Mesh(2, params=NO_RETRY)
    await mesh[0].boot()
    await mesh[1].boot(origin_limiter=flat_limiter(0.0, 1.0))
    await mesh.link([(0, 1)])
    ids = await detached_while_published(mesh, 1, 3)
    await mesh[0].engine.repair.heartbeat()
    await wait_until(lambda: mesh[1].engine.stats.rejected["rate_limited"] == 2, 5, "two refused")
    await mesh.settle()
    assert sum(i in mesh[1].store.messages for i in ids) == 1  # one token's worth got through
    await mesh.close()


async def test_catch_up_skips_the_neighbour_limit_only_up_to_its_budget_per_link():
    mesh = Mesh(2, params=NO_RETRY)
    await mesh[0].boot()
    ids = [await mesh[0].engine.publish("t", n) for n in range(5)]
    await mesh[1].boot(params=replace(NO_RETRY, catchup_max_ids=2), neighbour_limiter=flat_limiter(0.0, 1.0))
    await mesh.link([(0, 1)])  # node 0 offers its 5 as a catch-up page
    await wait_until(lambda: mesh[1].engine.stats.rejected["rate_limited"] == 2, 5, "past the budget")
    await mesh.settle()
    assert sum(i in mesh[1].store.messages for i in ids) == 3  # two within the budget, one token's worth
    await mesh.close()


async def test_the_origin_limit_holds_for_catch_up_answers_too():
    """#20: 600 envelopes of one origin advertised by IHAVE first all got past its limit (catch-up
    answers skipped every limit); now one origin gets its tokens' worth whichever road it takes, and
    the neighbour that answered what we asked does not pay for it."""
    mesh = Mesh(2, params=NO_RETRY)
    await mesh[0].boot()
    ids = [await mesh[0].engine.publish("t", n) for n in range(5)]
    await mesh[1].boot(origin_limiter=flat_limiter(0.0, 1.0))
    await mesh.link([(0, 1)])  # node 0 offers its 5 as a catch-up page
    await wait_until(lambda: mesh[1].engine.stats.rejected["rate_limited"] == 4, 5, "the origin's limit")
    await mesh.settle()
    assert sum(i in mesh[1].store.messages for i in ids) == 1
    assert not [f for f in mesh[1].feedback if f[1] == "rate_limited"]
    await mesh.close()


async def test_a_digest_never_offers_a_neighbour_what_it_already_holds():
    """Two nodes, one link: once the receiver acknowledged the message (the sender got it from nobody
    else), neither side's heartbeat has anything to offer the other (a quiet link stays quiet).

    Counted from the acknowledgement: a heartbeat between the push and its ack may rightly offer the
    id, since the sender cannot yet know the push arrived (under load that window held 1-2 beats)."""
    mesh = Mesh(2, params=replace(NO_RETRY, heartbeat_s=0.02))
    await mesh.boot()
    await mesh.link([(0, 1)])
    message = await mesh[0].engine.publish("t", "once")
    await mesh.settle()
    await wait_until(lambda: mesh[0].engine.stats.acked_sent >= 1, 5, "the receiver's acknowledgement")
    sent = [node.engine.stats.ihave_sent for node in mesh.nodes]
    beats = [node.engine.stats.heartbeats for node in mesh.nodes]
    await wait_until(
        lambda: all(n.engine.stats.heartbeats >= b + 5 for n, b in zip(mesh.nodes, beats, strict=True)),
        5,
        "five heartbeats on both sides while the message is recent",
    )
    assert mesh.missing([message]) == 0
    assert [node.engine.stats.ihave_sent for node in mesh.nodes] == sent
    await mesh.close()


async def test_a_heartbeat_offers_a_neighbour_each_recent_id_once():
    """A neighbour that never says it holds the message (no ack, no copy back) hears its id in one
    IHAVE, not in one per heartbeat of the gossip history (the old code offered it 9 times here);
    a newer id is offered in a later heartbeat all the same."""
    mesh = Mesh(1, params=replace(NO_RETRY, heartbeat_s=0.02, gossip_history=10))
    await mesh.boot()
    silent = Recorder(mesh)
    await mesh.network.connect(silent.peer_id, mesh[0].peer_id)
    engine = mesh[0].engine

    def offers(message_id: str) -> int:
        return sum(message_id in m["ids"] for m in silent.of_type("ihave"))

    async def beats(count: int) -> None:
        start = engine.stats.heartbeats
        await wait_until(lambda: engine.stats.heartbeats >= start + count, 5, f"{count} heartbeats")

    first = await engine.publish("t", "first")
    await beats(12)  # the history (10 beats) has passed
    second = await engine.publish("t", "second")
    await beats(12)
    assert first in silent.envelope_ids() and (offers(first), offers(second)) == (1, 1)
    await mesh.close()


async def test_a_mesh_short_of_d_lo_takes_a_new_link_at_the_next_message():
    """The relay's mesh could not be filled (one neighbour, d_lo 4) and targets() remembers that; a
    link that comes up ends it, even one of the previous wire version, which never announces."""
    mesh = Mesh(2, params=NO_RETRY)
    await mesh.boot()
    await mesh.link([(0, 1)])
    origin, relay = mesh[0], mesh[1]
    await origin.engine.publish("t", "first")
    await mesh.settle()
    old = Identity.generate().peer_id
    sink = Sink()
    mesh.network.attach(old, sink)
    await mesh.network.connect(relay.peer_id, old)
    second = await origin.engine.publish("t", "second")
    await mesh.settle()
    assert [Envelope.decode(raw).id for raw in sink.envelopes] == [second]
    await mesh.close()


class Silent(Endpoint):
    """Takes every push and acknowledges none; keeps what it was sent and offered."""

    def __init__(self) -> None:
        self.pushed: list[bytes] = []
        self.offered: list[str] = []

    async def on_message(self, from_peer, message):
        if message.get("type") == "msgs":
            self.pushed += message["msgs"]
        elif message.get("type") == "ihave":
            self.offered += message.get("ids", [])


@pytest.mark.parametrize("digest", ["heartbeat", "run_round"])
async def test_a_digest_offers_no_id_still_waiting_in_that_neighbours_outbox(digest):
    """An IHAVE overtakes pushes still in the outbox (its linger, link backpressure), and the IWANT it
    drew made a second copy of each; once handed to the (ordered) link, the id may be offered."""
    mesh = Mesh(1, params=replace(NO_RETRY, batch_linger_s=0.05))
    await mesh.boot()
    engine, sink, peer = mesh[0].engine, Silent(), Identity.generate().peer_id
    mesh.network.attach(peer, sink)
    await mesh.network.connect(mesh[0].peer_id, peer)
    message_id = await engine.publish("t", "x")
    offer = getattr(engine.repair, digest)
    await offer()  # decides before the outbox's linger is over
    await wait_until(lambda: sink.pushed, 5, "the push")
    await mesh.network.settle(5)
    assert message_id not in sink.offered
    await offer()
    await wait_until(lambda: message_id in sink.offered, 5, "the id offered once its push left")
    await mesh.close()
