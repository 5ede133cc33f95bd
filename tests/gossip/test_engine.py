import asyncio
import dataclasses
from collections import Counter

import pytest

from f0mesh.gossip import AuditEvent, GossipReject, MemoryGossipStore, Reason
from f0mesh.gossip.stats import GossipStats
from f0mesh.trust import Event

from .meshkit import FAST, Mesh, distances, regular_topology, wait_until


@pytest.fixture
async def mesh_of():
    meshes: list[Mesh] = []

    async def build(n: int, edges, **kw) -> Mesh:
        mesh = Mesh(n, **kw)
        meshes.append(mesh)
        await mesh.boot()
        await mesh.link(edges)
        return mesh

    yield build
    for mesh in meshes:
        await mesh.close()


async def test_publish_commits_then_pushes_and_counts_only_acknowledged_sends(mesh_of):
    mesh = await mesh_of(3, [(0, 1), (0, 2)])
    origin = mesh[0]
    message_id = await origin.engine.publish("chat", {"text": "hi"})
    row = origin.store.messages[message_id]
    assert (row.origin, row.seq, row.topic, row.payload, row.hops) == (
        origin.peer_id,
        1,
        "chat",
        {"text": "hi"},
        0,
    )
    assert [(r.event, r.peer_id) for r in origin.store.audit_for(message_id)] == [
        (AuditEvent.PUBLISHED, origin.peer_id)
    ]
    await wait_until(lambda: len(origin.store.audit_for(message_id, AuditEvent.SENT)) == 2, 5, "two acks")
    assert {r.peer_id for r in origin.store.audit_for(message_id, AuditEvent.SENT)} == {
        mesh[1].peer_id,
        mesh[2].peer_id,
    }
    for node in (mesh[1], mesh[2]):
        [received] = node.store.audit_for(message_id, AuditEvent.RECEIVED)
        assert received.peer_id == origin.peer_id and node.store.messages[message_id].hops == 0
        assert node.delivered[0].id == message_id
        assert (origin.peer_id, str(Event.FIRST_DELIVERY)) in node.feedback
    assert origin.delivered[0].id == message_id  # local subscribers see own messages too
    assert origin.engine.stats.published == 1 and origin.engine.stats.acked_sent == 2


async def test_sequence_numbers_increase_and_resume_after_a_restart(mesh_of):
    mesh = await mesh_of(2, [(0, 1)])
    ids = [await mesh[0].engine.publish("t", n) for n in range(3)]
    assert [mesh[0].store.messages[i].seq for i in ids] == [1, 2, 3]
    await wait_until(lambda: mesh[1].has(ids), 5, "delivery")
    assert mesh[1].engine.highest_seq(mesh[0].peer_id) == 3
    await mesh[0].engine.stop()
    await mesh[0].boot()
    again = await mesh[0].engine.publish("t", "after restart")
    assert mesh[0].store.messages[again].seq == 4


async def test_subscribe_filters_by_topic_and_unsubscribes(mesh_of):
    mesh = await mesh_of(2, [(0, 1)])
    got: list[str] = []
    stop = mesh[1].engine.subscribe("news", lambda m: got.append(m.payload))

    async def slow(message):
        await asyncio.sleep(0)
        got.append(f"async:{message.payload}")

    mesh[1].engine.subscribe("news", slow)
    first = await mesh[0].engine.publish("news", "one")
    await mesh[0].engine.publish("other", "ignored")
    await wait_until(lambda: len(got) == 2, 5, "subscribers")
    stop()
    last = await mesh[0].engine.publish("news", "two")
    await wait_until(lambda: mesh[1].has([first, last]) and len(got) == 3, 5, "delivery")
    assert sorted(got) == ["async:one", "async:two", "one"]


async def test_publish_refuses_bad_input_with_an_http_status():
    mesh = Mesh(1)
    await mesh.boot()
    with pytest.raises(GossipReject) as info:
        await mesh[0].engine.publish("t", {"blob": "x" * 70_000})
    assert info.value.reason is Reason.TOO_LARGE and info.value.status == 413
    with pytest.raises(GossipReject) as info:
        await mesh[0].engine.publish("", 1)
    assert info.value.status == 400
    assert mesh[0].store.messages == {}
    await mesh.close()


class GatedStore(MemoryGossipStore):
    """Commits wait for the gate, to observe what happens before a transaction completes."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()

    async def commit(self, messages, audit):
        await self.gate.wait()
        await super().commit(messages, audit)


async def test_acknowledgements_wait_for_the_receivers_commit():
    mesh = Mesh(2)
    mesh[1].store = gated = GatedStore()
    await mesh.boot()
    await mesh.link([(0, 1)])
    message_id = await mesh[0].engine.publish("t", 1)
    await wait_until(lambda: mesh[1].engine.stats.recv_unfiltered == 1, 5, "receipt")
    await asyncio.sleep(0.1)  # ample time for an ack, were one sent before the commit
    assert mesh[0].engine.stats.acked_sent == 0 and message_id not in gated.messages
    assert mesh[1].engine.stats.delivered == 0  # counted once stored
    gated.gate.set()
    await wait_until(lambda: mesh[0].engine.stats.acked_sent == 1, 5, "ack after commit")
    assert message_id in gated.messages and mesh[1].engine.stats.delivered == 1
    await mesh.close()


async def test_publish_returns_only_after_its_own_commit():
    mesh = Mesh(1)
    mesh[0].store = gated = GatedStore()
    await mesh.boot()
    task = asyncio.ensure_future(mesh[0].engine.publish("t", 1))
    await asyncio.sleep(0.05)
    assert not task.done()
    gated.gate.set()
    message_id = await asyncio.wait_for(task, 5)
    assert message_id in gated.messages
    await mesh.close()


async def test_twenty_nodes_every_message_reaches_every_node_exactly_once(mesh_of):
    n = 20
    edges = regular_topology(n, 3, seed=42)
    mesh = await mesh_of(n, edges, seed=42)
    origins = [0, 5, 9, 13, 17]
    ids: list[str] = []
    for round_ in range(40):
        batch = [mesh[o].engine.publish(f"topic{o % 2}", {"round": round_, "from": o}) for o in origins]
        ids.extend(await asyncio.gather(*batch))
    assert len(set(ids)) == 200
    await wait_until(lambda: mesh.missing(ids) == 0, 60, "every message everywhere")
    await mesh.settle()
    origin_of = {i: mesh[origins[k % len(origins)]] for k, i in enumerate(ids)}
    for node in mesh.nodes:
        assert set(node.store.messages) == set(ids)
        events = Counter((r.message_id, r.event) for r in node.store.audit)
        for message_id in ids:
            mine = origin_of[message_id] is node
            assert events[(message_id, AuditEvent.PUBLISHED)] == int(mine)
            assert events[(message_id, AuditEvent.RECEIVED)] == int(not mine)
        assert sorted(m.id for m in node.delivered) == sorted(ids)  # each delivered once
        assert not node.engine.stats.rejected
    for origin_index in origins:
        dist = distances(edges, origin_index)
        origin = mesh[origin_index]
        for node in mesh.nodes:
            for row in node.store.messages.values():
                if row.origin == origin.peer_id and node is not origin:
                    assert dist[node.index] - 1 <= row.hops <= FAST.ttl
    hops = Counter(
        row.hops for node in mesh.nodes for row in node.store.messages.values() if row.origin != node.peer_id
    )
    assert hops[0] > 0 and max(hops) >= 2
    duplicates = sum(node.engine.stats.duplicates for node in mesh.nodes)
    assert duplicates == sum(len(node.store.audit_for(event=AuditEvent.DUPLICATE)) for node in mesh.nodes)


def counters(stats: GossipStats) -> dict[tuple[str, ...], int]:
    """(name, *label pairs) -> value of every exported counter."""
    return {(name, *labels.items()): value for name, _, labels, value in stats.samples()}


async def test_tracer_sees_every_decision_and_stats_export_counters_by_topic():
    traced = []

    class Tracer:
        def trace(self, row):
            traced.append(row)

    mesh = Mesh(2)
    await mesh[0].boot(tracer=Tracer())
    await mesh[1].boot()
    await mesh.link([(0, 1)])
    first = await mesh[0].engine.publish("t", 1)
    second = await mesh[1].engine.publish("t", 2)
    await wait_until(lambda: mesh[0].has([second]) and mesh[0].engine.stats.acked_sent == 1, 5, "exchange")
    await mesh.settle()
    assert [(r.event, r.message_id) for r in traced] == [(r.event, r.message_id) for r in mesh[0].store.audit]
    assert {(AuditEvent.PUBLISHED, first), (AuditEvent.SENT, first), (AuditEvent.RECEIVED, second)} <= {
        (r.event, r.message_id) for r in traced
    }
    samples = counters(mesh[0].engine.stats)
    assert samples["topic_messages_published", ("topic", "t")] == 1
    assert samples["topic_messages_delivered", ("topic", "t")] == 1
    assert samples["sent_envelopes",] >= 1 and ("iwant_requested_ids",) in samples
    mesh[0].engine.stats.rejected["replay"] += 2
    assert counters(mesh[0].engine.stats)["rejected_envelopes", ("reason", "replay")] == 2
    await mesh.close()


class FlakyStore(MemoryGossipStore):
    """The first commit that carries a message fails, as a full disk or a lost database would."""

    def __init__(self) -> None:
        super().__init__()
        self.failed = False

    async def commit(self, messages, audit):
        if messages and not self.failed:
            self.failed = True
            raise OSError("database is locked")
        await super().commit(messages, audit)


async def test_a_message_whose_commit_failed_is_neither_acked_nor_forgotten():
    mesh = Mesh(2)
    mesh[1].store = flaky = FlakyStore()
    await mesh.boot()
    await mesh.link([(0, 1)])
    message_id = await mesh[0].engine.publish("t", "important")
    await wait_until(lambda: flaky.failed, 5, "the failed commit")
    await mesh.settle()
    assert message_id not in flaky.messages and mesh[0].engine.stats.acked_sent == 0
    assert mesh[1].delivered == []  # subscribers only ever see committed messages
    stats = mesh[1].engine.stats
    assert (stats.delivered, stats.not_stored) == (0, 1)  # not counted as delivered, counted as lost
    await wait_until(lambda: flaky.audit_for(message_id, AuditEvent.REJECTED), 5, "the not_stored audit row")
    assert [row.reason for row in flaky.audit_for(message_id, AuditEvent.REJECTED)] == ["not_stored"]
    await mesh[0].engine.repair.run_round()  # offered again: node 1 must not think it has it
    await wait_until(lambda: message_id in flaky.messages, 5, "repair after the failure")
    assert [m.id for m in mesh[1].delivered] == [message_id]
    await mesh.close()


async def test_messages_of_a_blocked_origin_are_refused_whoever_relays_them():
    mesh = Mesh(3)
    blocked: set[str] = set()
    for i, node in enumerate(mesh.nodes):
        await node.boot(**({"blocked": blocked.__contains__} if i == 2 else {}))
    await mesh.link([(0, 1), (1, 2)])
    blocked.add(mesh[0].peer_id)
    refused = await mesh[0].engine.publish("t", "from the blocked origin")
    allowed = await mesh[1].engine.publish("t", "from the relay itself")
    await wait_until(lambda: mesh[2].has([allowed]) and mesh[1].has([refused]), 5, "both messages spread")
    await mesh.settle()
    assert not mesh[2].has([refused]) and [m.id for m in mesh[2].delivered] == [allowed]
    rows = mesh[2].store.audit_for(refused, "rejected")
    assert rows and {(r.peer_id, r.reason) for r in rows} == {(mesh[1].peer_id, "blocked")}
    assert mesh[2].feedback == [(mesh[1].peer_id, "first_delivery")]  # the relay could not know
    assert counters(mesh[2].engine.stats)["rejected_envelopes", ("reason", "blocked")] == len(rows)
    # Lifting the block lets the message in: it was never marked seen.
    blocked.clear()
    await mesh[1].engine.repair.on_neighbour_up(mesh[2].peer_id)  # offers its window's ids to node 2
    await wait_until(lambda: mesh[2].has([refused]), 5, "the message after the block was lifted")
    await mesh.close()


async def test_publishes_past_the_pending_limit_are_refused_and_none_accepted_is_lost():
    mesh = Mesh(1)
    mesh[0].store = gated = GatedStore()
    await mesh[0].boot(params=dataclasses.replace(FAST, max_pending_publishes=3))
    engine = mesh[0].engine
    waiting = [engine.publish("t", i) for i in range(3)]
    await asyncio.sleep(0.05)
    with pytest.raises(GossipReject) as info:
        await engine.publish("t", "one too many")
    assert info.value.status == 429 and info.value.code == "rate_limited"
    assert "max_pending_publishes 3" in info.value.detail
    assert counters(engine.stats)["publish_overloaded",] == 1
    gated.gate.set()
    accepted = await asyncio.wait_for(asyncio.gather(*waiting), 5)
    assert set(accepted) <= set(gated.messages) and len(gated.messages) == 3
    assert await asyncio.wait_for(engine.publish("t", "room again"), 5) in gated.messages
    await mesh.close()


async def test_publish_many_signs_each_payload_as_its_own_message_and_commits_them_together(mesh_of):
    mesh = await mesh_of(2, [(0, 1)])
    origin, receiver = mesh[0], mesh[1]
    first = await origin.engine.publish("t", "before")
    ids = await origin.engine.publish_many("t", ["a", {"b": 1}, "c"])
    await mesh.settle()
    rows = [origin.store.messages[i] for i in ids]
    assert [(r.seq, r.payload) for r in rows] == [(2, "a"), (3, {"b": 1}), (4, "c")]
    assert len({first, *ids}) == 4 and receiver.has(ids)  # each verified and accepted on its own
    assert all(origin.store.audit_for(i, AuditEvent.PUBLISHED) for i in ids)
    assert all(len(origin.store.audit_for(i, AuditEvent.SENT)) == 1 for i in ids)
    assert [m.id for m in receiver.delivered] == [first, *ids]


async def test_publish_many_is_all_or_nothing(mesh_of):
    mesh = await mesh_of(1, [])
    engine = mesh[0].engine
    with pytest.raises(GossipReject) as bad:
        await engine.publish_many("t", ["fine", float("nan"), "fine too"])
    assert bad.value.code == "malformed"
    params = engine.params
    with pytest.raises(GossipReject) as many:
        await engine.publish_many("t", ["x"] * (params.max_pending_publishes + 1))
    assert many.value.code == "rate_limited"
    await mesh.settle()
    assert mesh[0].store.messages == {} and engine.highest_seq(mesh[0].peer_id) == 0
    assert await engine.publish_many("t", []) == []
    [message_id] = await engine.publish_many("t", ["now"])
    assert mesh[0].store.messages[message_id].seq == 1
