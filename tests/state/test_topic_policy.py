"""Issue 21: a topic's publish policy, a signed entry of the replicated map `_topics`, enforced by every
node's gossip engine. Replicas with real engines on a MemoryNetwork (tests/state/kit.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from types import SimpleNamespace

import pytest
from gossip.meshkit import wait_until

from f0mesh.crdt import HLC, LWWMap
from f0mesh.errors import PolicyError
from f0mesh.gossip import AuditEvent, Envelope, GossipReject
from f0mesh.identity import Identity
from f0mesh.state.sync import gossip_payload

from .kit import PARAMS, Clock, Cluster, MemoryStateStore, signed, solo


@pytest.fixture
async def cluster_of() -> AsyncIterator[Callable[..., object]]:
    made: list[Cluster] = []

    async def make(n: int, *links: tuple[int, int]) -> Cluster:
        cluster = Cluster(n, PARAMS, declare_writers=False)
        made.append(cluster)
        await cluster.boot()
        await cluster.link(*links)
        return cluster

    yield make
    for cluster in made:
        await cluster.close()


async def test_only_the_named_publishers_reach_a_policed_topic(cluster_of) -> None:
    mesh = await cluster_of(3, (0, 1), (1, 2))
    creator, publisher, outsider = mesh[0], mesh[1], mesh[2]
    view = await creator.state.set_topic_policy("prices", [publisher.peer_id])
    assert view["publishers"] == sorted([creator.peer_id, publisher.peer_id])
    await mesh.converged("_topics")
    assert outsider.state.topic_policies() == [view]

    with pytest.raises(GossipReject) as refused:
        await outsider.engine.publish("prices", 1)
    assert (refused.value.status, refused.value.code) == (403, "not_publisher")
    with pytest.raises(PolicyError):  # the first create holds the topic
        await outsider.state.set_topic_policy("prices", [outsider.peer_id])

    # the outsider's node publishes anyway, properly signed: its neighbour drops it, audited, unrelayed
    hlc = HLC(outsider.peer_id)
    forced = Envelope.create(outsider.identity, 99, hlc.now(), "prices", "spam", 8)
    await mesh.network.transport(outsider.peer_id).send(
        publisher.peer_id, {"type": "msgs", "msgs": [forced.encode()]}
    )
    await wait_until(lambda: publisher.engine.stats.rejected["not_publisher"] >= 1, 5, "the refusal")
    ok = await publisher.engine.publish("prices", "quote")
    other = await outsider.engine.publish("news", "open topic")  # topics without a policy stay open
    await wait_until(lambda: ok in creator.gossip_store.messages, 5, "the publisher's message")
    await wait_until(lambda: other in creator.gossip_store.messages, 5, "the open topic's message")
    await publisher.engine.flush()
    rows = publisher.gossip_store.audit_for(forced.id, AuditEvent.REJECTED)
    assert [(r.peer_id, r.reason) for r in rows] == [(outsider.peer_id, "not_publisher")]
    assert forced.id not in publisher.gossip_store.messages and forced.id not in creator.gossip_store.messages
    assert not any(why == "invalid" for r in mesh.replicas for _p, why in r.violations)


async def test_a_forged_backdated_or_malformed_topic_policy_is_refused() -> None:
    clock, me, other = Clock(), Identity.generate(), Identity.generate()
    violations: list[tuple[str, str]] = []
    state = solo(MemoryStateStore(), clock, me, on_violation=lambda peer, why: violations.append((peer, why)))
    await state.start()

    def deliver(entry_key: object, value: object, author: Identity, skew_ms: int = 0) -> None:
        claim = LWWMap(author.peer_id)
        ts = HLC(author.peer_id, clock=lambda: int(clock() * 1000) + skew_ms).now()
        claim.set(entry_key, value, ts)
        signed("_topics", claim, author)
        payload = gossip_payload("_topics", "map", claim.to_bytes())
        state.on_gossip(SimpleNamespace(origin=author.peer_id, payload=payload))

    try:
        await state.set_topic_policy("prices", [])
        created = [int(clock() * 1000) - 3_600_000, 0]
        deliver(("prices", other.peer_id), {"created": created, "publishers": []}, other, -3_600_000)
        deliver(("open", me.peer_id), {"created": created, "publishers": []}, other)  # in my name
        deliver(("open", other.peer_id), {"created": created, "publishers": ["not-a-peer"]}, other)
        deliver(("*", other.peer_id), {"created": created, "publishers": []}, other)
        assert [p["creator"] for p in state.topic_policies()] == [me.peer_id]
        assert state.may_publish("prices", me.peer_id) and not state.may_publish("prices", other.peer_id)
        assert state.may_publish("open", other.peer_id)
        assert violations == [(other.peer_id, "bad_policy")] * 4
    finally:
        await state.stop()


async def test_a_document_policy_cannot_name_the_nodes_own_maps() -> None:
    """A policy entry for "peers" would make every replica evict the registry ops of all but its author."""
    clock, me, other = Clock(), Identity.generate(), Identity.generate()
    state = solo(MemoryStateStore(), clock, me)
    await state.start()
    try:
        for reserved in ("peers", "_topics"):
            claim = LWWMap(other.peer_id)
            ts = HLC(other.peer_id, clock=lambda: int(clock() * 1000)).now()
            claim.set((reserved, other.peer_id), {"created": [ts.wall_ms, ts.logical], "writers": []}, ts)
            signed("_policies", claim, other)
            payload = gossip_payload("_policies", "map", claim.to_bytes())
            state.on_gossip(SimpleNamespace(origin=other.peer_id, payload=payload))
            assert state.policy(reserved) is None
        assert state.dropped["bad_policy"] == 2
    finally:
        await state.stop()
