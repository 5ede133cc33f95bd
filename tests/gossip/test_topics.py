"""Topics: subscription filtering, a mesh per topic with GRAFT/PRUNE and backoff, fanout, hostile control."""

import random
from dataclasses import replace

import pytest

from f0mesh.gossip import AuditEvent, GossipParams, GossipReject
from f0mesh.gossip.topic_mesh import MAX_BACKOFF_S, MAX_MESHES, TopicMesh
from f0mesh.gossip.topics import MAX_TOPICS, Subscriptions
from f0mesh.identity import Identity

from .meshkit import Mesh, wait_until

SYSTEM = ("telemetry", "trust", "state")


async def triangle(params: GossipParams | None = None, **topics: list[str]) -> Mesh:
    """Three engines, all linked; node i subscribes to topics[f"n{i}"] (missing: every topic)."""
    mesh = Mesh(3)
    for i, node in enumerate(mesh.nodes):
        extra = {} if params is None else {"params": params}
        await node.boot(topics=topics.get(f"n{i}", ()), always_subscribed=SYSTEM, **extra)
    await mesh.link([(0, 1), (1, 2), (0, 2)])
    await subscriptions_known(mesh)
    return mesh


async def subscriptions_known(mesh: Mesh) -> None:
    def known() -> bool:
        return all(
            a.engine.subscriptions.speaks_topics(b.peer_id)
            for a in mesh.nodes
            for b in mesh.nodes
            if a is not b
        )

    await wait_until(known, 5, "every node heard its neighbours' subscriptions")


async def test_a_node_never_stores_or_relays_a_topic_it_does_not_subscribe_to():
    mesh = await triangle(n0=["news"], n1=["other"], n2=["news"])
    outsider = mesh[1]
    ids = [await mesh[0].engine.publish("news", n) for n in range(5)]
    await mesh.settle()
    assert mesh[2].has(ids)
    assert not any(outsider.has([i]) for i in ids)
    # no row at all: nothing received, forwarded, sent or even refused, for it was never pushed to
    assert [r for r in outsider.store.audit if r.message_id in ids] == []
    # its own publish to a topic it does not take is stored all the same, and reaches the subscribers
    own = await outsider.engine.publish("news", "from the outsider")
    await mesh.settle()
    assert outsider.has([own]) and mesh[0].has([own]) and mesh[2].has([own])
    # a system topic is always carried
    system = await mesh[0].engine.publish("state", "delta")
    await mesh.settle()
    assert mesh.missing([system]) == 0
    await mesh.close()


async def test_a_pushed_message_of_an_unsubscribed_topic_is_refused_unacknowledged_and_not_held_against():
    mesh = await triangle(n1=["other"])
    sender, outsider = mesh[0], mesh[1]
    # a sender that has not heard the outsider's subscriptions yet (or an old node) pushes anyway
    sender.engine.subscriptions.forget(outsider.peer_id)
    message_id = await sender.engine.publish("news", "x")
    await mesh.settle()
    assert not outsider.has([message_id])
    rows = outsider.store.audit_for(message_id, AuditEvent.REJECTED)
    assert [r.reason for r in rows] == ["not_subscribed"]
    assert outsider.feedback == []  # no penalty for the neighbour
    acked_by = {r.peer_id for r in sender.store.audit_for(message_id, AuditEvent.SENT)}
    assert acked_by == {mesh[2].peer_id}  # never acknowledged by the outsider
    await mesh.close()


async def test_join_and_leave_at_run_time_change_what_is_stored_and_prune_the_mesh():
    mesh = await triangle(n0=["a"], n1=["a"], n2=["b"])
    late = mesh[2]
    before = await mesh[0].engine.publish("a", 1)
    await mesh.settle()
    assert not late.has([before])
    assert await late.engine.join("a")
    await wait_until(lambda: mesh[0].engine.subscriptions.wants(late.peer_id, "a"), 5, "the join announced")
    after = await mesh[0].engine.publish("a", 2)
    await mesh.settle()
    assert late.has([after])
    assert late.peer_id in mesh[0].engine.mesh.meshes["a"]
    assert await late.engine.leave("a")
    await wait_until(lambda: late.peer_id not in mesh[0].engine.mesh.meshes["a"], 5, "pruned on leave")
    last = await mesh[0].engine.publish("a", 3)
    await mesh.settle()
    assert not late.has([last])
    await mesh.close()


async def test_hostile_control_is_refused_as_malformed_and_big_backoffs_are_clamped():
    # graylisting (test_score.py) would cut the sender off after three: here each refusal is counted
    lenient = replace(GossipParams(), gossip_threshold=-1e9, publish_threshold=-1e9, graylist_threshold=-1e9)
    mesh = await triangle(lenient)
    victim, attacker = mesh[0], mesh[1]
    send = mesh.network.transport(attacker.peer_id).send
    bad = [
        {"type": "ihave", "ids": [], "subs": [f"t{i}" for i in range(MAX_TOPICS + 1)]},
        {"type": "ihave", "ids": [], "subs": ["bad topic!"]},
        {"type": "ihave", "ids": [], "graft": "news"},
        {"type": "ihave", "ids": [], "prune": [["news", 1, ["not a peer id"]]]},
        {"type": "ihave", "ids": [], "prune": [["news", "soon", []]]},
    ]
    for message in bad:
        await send(victim.peer_id, message)
    await mesh.settle()
    reasons = [
        r.reason for r in victim.store.audit_for(event=AuditEvent.REJECTED) if r.peer_id == attacker.peer_id
    ]
    assert reasons == ["malformed"] * len(bad)
    await send(victim.peer_id, {"type": "ihave", "ids": [], "prune": [["news", 1e12, []]]})
    await mesh.settle()
    until = victim.engine.mesh._backoff[("news", attacker.peer_id)]
    assert until - victim.engine.mesh._now() <= MAX_BACKOFF_S
    await mesh.close()


# the mesh alone, driven synchronously

PARAMS = replace(GossipParams(), d=3, d_lo=2, d_hi=4, floor_weight=0.0, prune_px=2, flood_publish=False)


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def topic_mesh(links: list[str], scores: dict[str, float], subs: Subscriptions, clock: Clock) -> TopicMesh:
    return TopicMesh(PARAMS, lambda: list(links), lambda: scores, random.Random(1), subs, now=clock)


def peers(n: int) -> list[str]:
    return sorted(Identity.generate().peer_id for _ in range(n))


def test_graft_by_trust_prune_above_d_hi_with_px_and_backoff():
    links = peers(8)
    subs = Subscriptions(["t"])
    for p in links:
        subs.announced(p, ["t"])
    scores = {p: 1.0 for p in links[:5]}  # links[5:] are untrusted and, with no floor, never grafted
    clock = Clock()
    mesh = topic_mesh(links, scores, subs, clock)
    first = mesh.targets("t", excluded=())
    assert len(first) == PARAMS.d and set(first) <= set(links[:5])
    control = mesh.take_control()
    assert sorted(control) == sorted(first) and all(c == {"graft": ["t"]} for c in control.values())
    # grafts from everyone: taken up to d_hi, the rest pruned back at once with PX and the backoff
    for p in links:
        mesh.on_graft(p, ["t"])
    assert len(mesh.meshes["t"]) == PARAMS.d_hi
    refused = mesh.take_control()
    prunes = {p: c["prune"] for p, c in refused.items()}
    assert len(prunes) == len(links) - PARAMS.d_hi
    for entries in prunes.values():
        [(topic, backoff, px)] = entries
        assert topic == "t" and backoff == PARAMS.prune_backoff_s and len(px) == PARAMS.prune_px
        assert set(px) <= set(links[:5])  # the best-trusted subscribers
    # a pruned peer that grafts again during its backoff is pruned again, and stays out
    again = next(iter(prunes))
    mesh.on_graft(again, ["t"])
    assert again not in mesh.meshes["t"] and "prune" in mesh.take_control()[again]
    # past the backoff it may come in
    clock.t += PARAMS.prune_backoff_s + 1
    mesh.maintain()
    for p in list(mesh.meshes["t"])[:1]:
        mesh.meshes["t"].discard(p)
    mesh.on_graft(again, ["t"])
    assert again in mesh.meshes["t"]


def test_maintain_prunes_the_least_trusted_above_d_hi_and_a_pruned_node_does_not_regraft():
    links = peers(6)
    subs = Subscriptions(["t"])
    for p in links:
        subs.announced(p, ["t"])
    scores = {p: float(i + 1) for i, p in enumerate(links)}
    clock = Clock()
    mesh = topic_mesh(links, scores, subs, clock)
    mesh.meshes["t"] = set(links)
    mesh.maintain()
    assert mesh.meshes["t"] == set(links[-PARAMS.d :])  # the d most trusted kept
    assert sorted(mesh.take_control()) == sorted(links[: -PARAMS.d])
    # a neighbour that prunes us leaves the mesh and is not grafted again during its backoff
    pruner = links[-1]
    mesh.on_prune(pruner, [["t", 5, []]])
    assert pruner not in mesh.meshes["t"]
    mesh.meshes["t"].clear()
    mesh.maintain()
    assert pruner not in mesh.meshes["t"] and len(mesh.meshes["t"]) >= PARAMS.d_lo


def test_fanout_for_a_topic_not_subscribed_is_picked_by_trust_among_subscribers_and_expires():
    links = peers(8)
    subs = Subscriptions(["mine"])
    for p in links[:6]:
        subs.announced(p, ["theirs"])
    for p in links[6:]:
        subs.announced(p, ["mine"])
    scores = {p: 1.0 for p in links[:4]}
    clock = Clock()
    mesh = topic_mesh(links, scores, subs, clock)
    chosen = mesh.publish_targets("theirs")
    assert len(chosen) == PARAMS.d and set(chosen) <= set(links[:4])
    assert "theirs" not in mesh.meshes and mesh.take_control() == {}  # no mesh, no GRAFT for it
    assert mesh.publish_targets("theirs") == chosen  # the same set while it is used
    clock.t += PARAMS.fanout_ttl_s + 1
    mesh.maintain()
    assert "theirs" not in mesh.fanout


def test_a_neighbour_that_never_announced_gets_the_old_behaviour():
    old, new = peers(2)
    subs = Subscriptions(["t"])
    subs.announced(new, ["other"])
    assert subs.wants(old, "anything") and not subs.wants(new, "t")
    mesh = topic_mesh([old, new], dict.fromkeys([old, new], 1.0), subs, Clock())
    mesh.pushed_by(old, "t")  # reciprocated, as before topics
    assert mesh.meshes["t"] == {old}
    assert mesh.take_control() == {}  # never sent GRAFT/PRUNE it would not understand
    mesh.missed(new, "t")  # a new peer is not taken in by asking: it GRAFTs
    assert mesh.meshes["t"] == {old}


def test_subscriptions_default_to_every_topic_and_keep_system_topics():
    subs = Subscriptions(always=SYSTEM)
    assert subs.own == ["*"] and subs.subscribed("anything")
    named = Subscriptions(["news"], always=SYSTEM)
    assert named.subscribed("trust") and not named.subscribed("sports")
    assert named.announcement() == sorted(["news", *SYSTEM])
    with pytest.raises(ValueError):
        named.leave("trust")


def test_grafts_for_made_up_topics_do_not_evict_the_meshes_in_use():
    honest, spammer = peers(2)
    subs = Subscriptions()  # every topic
    for p in (honest, spammer):
        subs.announced(p, ["*"])
    mesh = topic_mesh([honest, spammer], dict.fromkeys([honest, spammer], 1.0), subs, Clock())
    mesh.targets("news", excluded=())  # a mesh in use
    for batch in range(3):
        mesh.on_graft(spammer, [f"junk{batch}-{i}" for i in range(MAX_TOPICS)])
    assert len(mesh.meshes) == MAX_MESHES and honest in mesh.meshes["news"]


def test_a_neighbour_taken_for_an_old_node_is_grafted_once_it_announces():
    late = peers(1)[0]
    subs = Subscriptions(["t"])
    mesh = topic_mesh([late], {late: 1.0}, subs, Clock())
    assert mesh.targets("t", excluded=()) == [late] and mesh.take_control() == {}  # no GRAFT to an old node
    subs.announced(late, ["t"])
    mesh.maintain_peer(late, first=True)
    assert mesh.take_control() == {late: {"graft": ["t"]}}
    subs.announced(late, ["other"])
    mesh.maintain_peer(late, first=False)
    assert late not in mesh.meshes["t"]


async def test_a_publish_policy_never_silences_a_system_topic():
    """Policies are peers' signed claims: one naming telemetry, trust or state must not be obeyed."""
    mesh = Mesh(2, may_publish=lambda topic, origin: False, always_subscribed={"sys"})
    await mesh.boot()
    await mesh.link([(0, 1)])
    try:
        with pytest.raises(GossipReject) as refused:
            await mesh[0].engine.publish("app", 1)
        assert (refused.value.status, refused.value.code) == (403, "not_publisher")
        sent = await mesh[0].engine.publish("sys", 1)
        await wait_until(lambda: sent in mesh[1].store.messages, 5, "the system topic's message")
    finally:
        await mesh.close()


async def test_system_topics_keep_a_lower_degree_and_are_not_flood_published():
    """An own telemetry message goes to its mesh of system_d peers, not to every link (the old code
    flooded all six), and neither side's system mesh grows past system_d_hi; a user topic still
    floods."""
    mesh = Mesh(7)
    for node in mesh.nodes:
        await node.boot(always_subscribed=SYSTEM)
    await mesh.link([(0, i) for i in range(1, 7)])
    hub = mesh[0].engine
    leaves = [node.peer_id for node in mesh.nodes[1:]]
    await wait_until(lambda: all(hub.subscriptions.speaks_topics(p) for p in leaves), 5, "subscriptions")
    system = await hub.publish("telemetry", "summary")
    user = await hub.publish("t", "news")
    await mesh.settle()
    sent = {i: {r.peer_id for r in mesh[0].store.audit_for(i, AuditEvent.SENT)} for i in (system, user)}
    assert (len(sent[system]), len(sent[user])) == (3, 6)  # system_d 3 by default
    for node in mesh.nodes:
        node.engine.mesh.maintain()
    assert len(hub.mesh.meshes["telemetry"]) <= 4  # system_d_hi
    await mesh.close()


def test_a_mesh_short_of_d_lo_looks_for_candidates_again_only_after_a_change():
    """targets() runs per envelope: a mesh that could not be filled is not filled again, over every
    neighbour, until an announcement, a link event or a heartbeat says something changed."""
    first, later, old = peers(3)
    links = [first]
    subs = Subscriptions(["t"])
    subs.announced(first, ["t"])
    looks: list[int] = []

    def neighbours() -> list[str]:
        looks.append(1)
        return list(links)

    params = replace(PARAMS, d_lo=3, d=3)
    scores = dict.fromkeys((first, later, old), 1.0)
    mesh = TopicMesh(params, neighbours, lambda: scores, random.Random(1), subs, now=Clock())
    assert mesh.targets("t", ()) == [first]  # below d_lo, and nobody else to take
    before = len(looks)
    for _ in range(5):
        assert mesh.targets("t", ()) == [first]
    assert len(looks) == before
    links.append(later)  # a neighbour of this wire version says what it takes: at the next message
    subs.announced(later, ["t"])
    assert mesh.targets("t", ()) == sorted([first, later])
    links.append(old)  # one of the previous wire version never announces: only its link event tells
    assert mesh.targets("t", ()) == sorted([first, later])
    mesh.changed()
    assert mesh.targets("t", ()) == sorted([first, later, old])
    mesh.remove(old)  # its link went down
    links.remove(old)
    assert mesh.targets("t", ()) == sorted([first, later])
    links.append(old)  # and came back unannounced: the next heartbeat takes it in at the latest
    assert mesh.targets("t", ()) == sorted([first, later])
    mesh.maintain()
    assert mesh.targets("t", ()) == sorted([first, later, old])
