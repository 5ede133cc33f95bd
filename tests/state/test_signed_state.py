"""Issue 20, class 1: every op proves its author, and a named document's write policy says who may write.

Replicas on a MemoryNetwork (tests/state/kit.py); the attacker is a linked peer whose ctl messages and
gossip are handed to the victim as its link would hand them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from types import SimpleNamespace

import pytest

from f0mesh.crdt import HLC, RGA, HLCTimestamp, LWWMap
from f0mesh.crdt.codec import pack, pack_value, unpack
from f0mesh.crdt.replicated import FORMAT
from f0mesh.errors import PolicyError
from f0mesh.identity import Identity
from f0mesh.state import MapChange
from f0mesh.state.sync import delta_pages, gossip_payload

from .kit import PARAMS, Clock, Cluster, MemoryStateStore, signed, solo


@pytest.fixture
async def cluster_of() -> AsyncIterator[Callable[..., object]]:
    made: list[Cluster] = []

    async def make(n: int, *links: tuple[int, int], declare_writers: bool = True) -> Cluster:
        cluster = Cluster(n, PARAMS, declare_writers=declare_writers)
        made.append(cluster)
        await cluster.boot()
        await cluster.link(*links)
        return cluster

    yield make
    for cluster in made:
        await cluster.close()


def _victims_op(victim: str, seq: int, ms: int, value: object, sig: bytes | None = None) -> bytes:
    """A delta with one op under the victim's name, at the victim's next seq and stamped later than anything
    the victim wrote: unsigned, or with a signature by some other key."""
    record = [HLCTimestamp(ms, 0, victim), True, pack_value(value), victim, seq]
    fields = [FORMAT, "lww-map", {victim: [seq - 1, seq]}, {}, [["owner", record]]]
    return pack(fields if sig is None else [*fields, {victim: [seq, sig]}])


async def test_an_op_forged_in_another_peers_name_is_refused_audited_and_not_propagated(cluster_of) -> None:
    mesh = await cluster_of(3, (0, 1), (0, 2))
    victim, attacker, third = mesh[0], mesh[1], mesh[2]
    await victim.state.update("cfg", MapChange(set={"owner": "victim"}))
    original = await mesh.converged("cfg")
    top = victim.state.get("cfg").crdt.version().get(victim.peer_id)
    later_ms = int(mesh.clock() * 1000) + 1000

    # 1. unsigned, by anti-entropy page; 2. signed with the attacker's own key, by gossip from the attacker
    unsigned = _victims_op(victim.peer_id, top + 1, later_ms, "attacker")
    [page] = delta_pages("cfg", "map", unsigned, 1, PARAMS.page_bytes)
    await victim.state.on_ctl(attacker.peer_id, page)
    wrong_key = _victims_op(victim.peer_id, top + 1, later_ms, "attacker", attacker.identity.sign(b"x"))
    payload = gossip_payload("cfg", "map", wrong_key)
    victim.state.on_gossip(SimpleNamespace(origin=attacker.peer_id, payload=payload))
    third.state.on_gossip(SimpleNamespace(origin=attacker.peer_id, payload=payload))

    assert victim.state.dropped["forged"] == 2 and third.state.dropped["forged"] == 1
    assert victim.violations == [(attacker.peer_id, "forged")] * 2
    assert [(peer, why) for peer, why, _detail in victim.audited] == [(attacker.peer_id, "state_forged")] * 2
    victim.state._schedule_push()  # a round of anti-entropy with every neighbour
    third.state._schedule_push()
    assert await mesh.converged("cfg") == original == {"owner": "victim"}
    # the victim's next own write is not shadowed by the forged seq
    await victim.state.update("cfg", MapChange(set={"owner": "still the victim"}))
    assert await mesh.converged("cfg") == {"owner": "still the victim"}


async def test_a_writer_the_policy_does_not_name_gets_403_here_and_is_dropped_from_the_mesh(
    cluster_of,
) -> None:
    mesh = await cluster_of(3, (0, 1), (0, 2), declare_writers=False)
    creator, outsider, third = mesh[0], mesh[1], mesh[2]
    await creator.state.update("cfg", MapChange(set={"a": 1}))
    await mesh.converged("cfg")
    assert outsider.state.view("cfg")["policy"]["writers"] == [creator.peer_id]

    with pytest.raises(PolicyError) as refused:
        await outsider.state.update("cfg", MapChange(set={"a": 2}))
    assert refused.value.status == 403 and refused.value.code == "not_writer"

    # the outsider's node writes anyway, properly signed by its own key: dropped, audited, paid for
    own = LWWMap(outsider.peer_id)
    own.set("a", 666, outsider.state.hlc.now())
    signed("cfg", own, outsider.identity)
    [page] = delta_pages("cfg", "map", own.to_bytes(), 1, PARAMS.page_bytes)
    await creator.state.on_ctl(outsider.peer_id, page)
    assert creator.state.dropped["not_writer"] == 1
    assert (outsider.peer_id, "not_writer") in creator.violations
    assert any(why == "state_not_writer" for _peer, why, _detail in creator.audited)
    assert creator.state.conflicts("cfg")[-1]["discarded_origin"] == outsider.peer_id

    # once named by the creator's operator, the outsider writes and everyone takes it
    policy = await creator.state.set_writers("cfg", [outsider.peer_id], [])
    assert outsider.peer_id in policy["writers"]
    with pytest.raises(PolicyError):
        await outsider.state.set_writers("cfg", [third.peer_id], [])  # only the creator changes it
    await mesh.converged("_policies")
    await outsider.state.update("cfg", MapChange(set={"a": 2}))
    assert await mesh.converged("cfg") == {"a": 2}


async def test_concurrent_creates_the_earliest_wins_and_the_other_ops_show_in_conflicts(cluster_of) -> None:
    mesh = await cluster_of(3, declare_writers=False)
    early, late, third = mesh[0], mesh[1], mesh[2]
    await early.state.update("doc", MapChange(set={"k": "early", "e": 1}))
    mesh.clock.advance(0.5)
    await late.state.update("doc", MapChange(set={"k": "late", "l": 1}))
    await mesh.link((1, 2))  # the third takes the late create first, and its "k" supersedes the early one
    assert await mesh.converged("doc", [late, third]) == {"k": "late", "l": 1}
    await mesh.link((0, 2))
    assert await mesh.converged("doc") == {"k": "early", "e": 1}
    for replica in mesh.replicas:
        assert replica.state.view("doc")["policy"]["creator"] == early.peer_id
    for replica in (late, third):
        refused = {
            c["discarded_origin"] for c in replica.state.conflicts("doc") if "refused" in c["resolution"]
        }
        assert refused == {late.peer_id}
    with pytest.raises(PolicyError):
        await late.state.update("doc", MapChange(set={"again": 1}))
    assert not any(why in ("not_writer", "bad_policy") for r in mesh.replicas for _p, why in r.violations)


async def test_a_backdated_create_and_a_left_or_delete_written_by_another_are_refused() -> None:
    clock, me, other = Clock(), Identity.generate(), Identity.generate()
    violations: list[tuple[str, str]] = []
    state = solo(MemoryStateStore(), clock, me, on_violation=lambda peer, why: violations.append((peer, why)))
    await state.start()
    try:
        await state.update("cfg", MapChange(set={"a": 1}))
        hlc = HLC(other.peer_id, clock=lambda: int(clock() * 1000) - 3_600_000)
        claim = LWWMap(other.peer_id)
        ts = hlc.now()
        claim.set(("cfg", other.peer_id), {"created": [ts.wall_ms, ts.logical], "writers": []}, ts)
        signed("_policies", claim, other)
        state.on_gossip(
            SimpleNamespace(
                origin=other.peer_id, payload=gossip_payload("_policies", "map", claim.to_bytes())
            )
        )
        assert state.view("cfg")["policy"]["creator"] == me.peer_id

        record = state._own_record()
        left = LWWMap(other.peer_id)
        left.set(
            me.peer_id,
            {"record": record.to_wire(), "status": "left", "last_seen": clock()},
            HLC(other.peer_id, clock=lambda: int(clock() * 1000)).now(),
        )
        signed("peers", left, other)
        state.on_gossip(
            SimpleNamespace(origin=other.peer_id, payload=gossip_payload("peers", "map", left.to_bytes()))
        )
        gone = LWWMap(other.peer_id)
        gone.delete(me.peer_id, HLC(other.peer_id, clock=lambda: int(clock() * 1000) + 5).now())
        signed("peers", gone, other)
        state.on_gossip(
            SimpleNamespace(origin=other.peer_id, payload=gossip_payload("peers", "map", gone.to_bytes()))
        )
        assert state.view("peers")["value"][me.peer_id]["status"] == "alive"
        assert violations == [(other.peer_id, "bad_policy"), (other.peer_id, "registry_forged")]
        assert state.dropped["early_delete"] == 1  # not held against the sender: an honest race
    finally:
        await state.stop()


async def test_unsigned_ops_of_an_older_release_local_ones_signed_foreign_ones_kept_and_never_sent() -> None:
    clock, me, old_peer = Clock(), Identity.generate(), Identity.generate()
    store = MemoryStateStore()
    legacy = LWWMap(me.peer_id)
    legacy.set("mine", 1, HLC(me.peer_id, clock=lambda: int(clock() * 1000)).now())
    legacy.set("theirs", 2, HLC(old_peer.peer_id, clock=lambda: int(clock() * 1000)).now())
    store.rows["doc/cfg"] = ("map", pack(unpack(legacy.to_bytes())[:5]))  # as an older release saved it
    state = solo(store, clock, me)
    await state.start()
    try:
        crdt = state.get("cfg").crdt
        assert crdt.unsigned() == {(old_peer.peer_id, 1)}
        assert state.view("cfg")["value"] == {"mine": 1, "theirs": 2}
        assert state.view("cfg")["policy"]["creator"] == me.peer_id
        sent = state._outgoing(state.get("cfg"), type(crdt.version())())
        assert {key for key, *_rest in sent.records()} == {"mine"}
    finally:
        await state.stop()


async def test_an_op_stamped_with_another_nodes_clock_is_refused() -> None:
    """Its own op, signed by its own key, but stamped as the victim's clock: it would win ties as the
    victim and be shown as the victim's write in the conflict log."""
    clock, me, other = Clock(), Identity.generate(), Identity.generate()
    violations: list[tuple[str, str]] = []
    state = solo(MemoryStateStore(), clock, me, on_violation=lambda peer, why: violations.append((peer, why)))
    await state.start()
    try:
        borrowed = LWWMap(other.peer_id)
        borrowed.set("k", 1, HLC(me.peer_id, clock=lambda: int(clock() * 1000)).now(), origin=other.peer_id)
        signed("notes", borrowed, other)
        payload = gossip_payload("notes", "map", borrowed.to_bytes())
        state.on_gossip(SimpleNamespace(origin=other.peer_id, payload=payload))
        assert state.get("notes") is None and violations == [(other.peer_id, "forged")]
    finally:
        await state.stop()


async def test_a_creator_claiming_more_names_than_a_node_holds_documents_is_refused() -> None:
    clock, me, squatter = Clock(), Identity.generate(), Identity.generate()
    violations: list[tuple[str, str]] = []
    state = solo(
        MemoryStateStore(),
        clock,
        me,
        on_violation=lambda peer, why: violations.append((peer, why)),
        max_documents=4,
    )
    await state.start()
    try:
        hlc = HLC(squatter.peer_id, clock=lambda: int(clock() * 1000))
        claims = LWWMap(squatter.peer_id)
        for i in range(5):
            ts = hlc.now()
            claims.set(
                (f"name{i}", squatter.peer_id), {"created": [ts.wall_ms, ts.logical], "writers": []}, ts
            )
        signed("_policies", claims, squatter)
        payload = gossip_payload("_policies", "map", claims.to_bytes())
        state.on_gossip(SimpleNamespace(origin=squatter.peer_id, payload=payload))
        assert violations == [(squatter.peer_id, "bad_policy")] and state.policy("name0") is None
    finally:
        await state.stop()


async def test_a_saved_document_named_like_the_policies_but_not_a_map_is_quarantined() -> None:
    clock, store = Clock(), MemoryStateStore()
    store.rows["doc/_policies"] = ("list", RGA("someone").to_bytes())
    state = solo(store, clock)
    await state.start()
    try:
        assert any("quarantined" in d for d in state.documents() if d["name"] == "_policies")
        await state.update("cfg", MapChange(set={"a": 1}))
        assert state.view("cfg")["policy"]["creator"] == state.peer_id
    finally:
        await state.stop()
