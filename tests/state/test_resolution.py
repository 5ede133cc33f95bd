"""Resolution policies chosen in a document's signed policy: last writer wins, ranked writer wins, keep all.

Three replicas on a MemoryNetwork (tests/state/kit.py) that all name each other as writers; two of them
write one key while cut off from each other, then meet.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from f0mesh.crdt import HLCTimestamp, LWWMap
from f0mesh.errors import ConflictError
from f0mesh.identity import Identity
from f0mesh.state import InvalidChange, MapChange
from f0mesh.state.policy import POLICIES_DOC

from .kit import PARAMS, Clock, Cluster, MemoryStateStore, gossiped, solo


@pytest.fixture
async def mesh() -> AsyncIterator[Cluster]:
    cluster = Cluster(3, PARAMS)
    await cluster.boot()
    await cluster.link((0, 1), (0, 2))
    yield cluster
    await cluster.close()


async def _concurrent(mesh: Cluster, name: str, first: int, second: int) -> None:
    """`first` writes k, then `second` writes k a second later without having seen it; then they meet."""
    await mesh.unlink((0, 1), (0, 2))
    await mesh[first].state.update(name, MapChange(set={"k": f"by {first}"}))
    mesh.clock.advance(1.0)
    await mesh[second].state.update(name, MapChange(set={"k": f"by {second}"}))
    await mesh.link((0, 1), (0, 2))


async def test_keep_all_shows_every_concurrent_value_on_every_replica_until_a_writer_resolves_it(
    mesh,
) -> None:
    creator = mesh[0]
    await creator.state.replace("cfg", "map", {"k": "start", "other": 1}, ("keep-all", []))
    await mesh.converged("cfg")
    await mesh.converged(POLICIES_DOC)
    await _concurrent(mesh, "cfg", 1, 2)
    await mesh.converged("cfg")

    views = [r.state.conflicts("cfg") for r in mesh.replicas]
    assert all(v == views[0] for v in views)
    [entry] = views[0]
    assert entry["open"] and entry["key"] == "k"
    assert sorted(s["value"] for s in entry["siblings"]) == ["by 1", "by 2"]
    assert {s["origin"] for s in entry["siblings"]} == {mesh[1].peer_id, mesh[2].peer_id}
    assert all(r.state.view("cfg")["open"] == ["k"] for r in mesh.replicas)
    assert all(r.state.view("cfg")["policy"]["resolution"] == "keep-all" for r in mesh.replicas)

    # PUT of what is shown still writes the open key: writing it is what resolves it
    shown = creator.state.view("cfg")["value"]
    await creator.state.replace("cfg", "map", shown)
    assert await mesh.converged("cfg") == shown
    assert all(r.state.conflicts("cfg") == [] and r.state.view("cfg")["open"] == [] for r in mesh.replicas)


async def test_ranked_writer_wins_by_the_signed_rank_list_not_by_time(mesh) -> None:
    rank = [mesh[2].peer_id, mesh[1].peer_id]
    await mesh[0].state.update("ranked", MapChange(set={"k": "start"}), ("ranked", rank))
    await mesh.converged("ranked")
    await mesh.converged(POLICIES_DOC)
    await _concurrent(mesh, "ranked", 2, 1)  # 1 writes later, but 2 ranks higher
    await mesh.converged("ranked")
    assert [r.state.view("ranked")["value"] for r in mesh.replicas] == [{"k": "by 2"}] * 3
    [entry] = mesh[1].state.conflicts("ranked")
    assert entry["kept_origin"] == mesh[2].peer_id and entry["discarded_origin"] == mesh[1].peer_id
    assert entry["resolution"].startswith("ranked writer wins")

    # a write made after seeing the other replaces it, whoever ranks higher
    await mesh[1].state.update("ranked", MapChange(set={"k": "1 saw 2"}))
    assert await mesh.converged("ranked") == {"k": "1 saw 2"}


async def test_last_writer_wins_stays_the_default(mesh) -> None:
    await mesh[0].state.update("plain", MapChange(set={"k": "start"}))
    await mesh.converged("plain")
    await mesh.converged(POLICIES_DOC)
    await _concurrent(mesh, "plain", 2, 1)
    assert await mesh.converged("plain") == {"k": "by 1"}
    assert isinstance(mesh[2].state.get("plain").crdt, LWWMap)
    assert mesh[2].state.view("plain")["policy"]["resolution"] == "lww"


async def test_the_resolution_is_fixed_at_create_and_checked() -> None:
    clock, me, other = Clock(), Identity.generate(), Identity.generate()
    state = solo(MemoryStateStore(), clock, identity=me, writers=(other.peer_id,))
    await state.start()
    try:
        with pytest.raises(InvalidChange) as bad:
            await state.replace("tags", "set", ["x"], ("keep-all", []))
        assert bad.value.code == "bad_resolution"
        with pytest.raises(InvalidChange):
            await state.update("cfg", MapChange(set={"a": 1}), ("ranked", []))  # a rank list is needed
        with pytest.raises(InvalidChange):
            await state.update("cfg", MapChange(set={"a": 1}), ("keep-all", [other.peer_id]))
        await state.update("cfg", MapChange(set={"a": 1}), ("ranked", [other.peer_id, me.peer_id]))
        with pytest.raises(ConflictError) as mismatch:
            await state.update("cfg", MapChange(set={"a": 2}), ("keep-all", []))
        assert mismatch.value.code == "resolution_mismatch"
        await state.update("cfg", MapChange(set={"a": 2}))  # no choice given: the document's own
        assert state.view("cfg")["policy"]["rank"] == [other.peer_id, me.peer_id]

        # the creator's node, rewriting its signed policy to another resolution, is refused
        wall_ms = int(clock() * 1000)
        policies = LWWMap(other.peer_id)
        policies.set(
            ("cfg2", other.peer_id),
            {"created": [1, 0], "writers": []},
            HLCTimestamp(wall_ms, 0, other.peer_id),
        )
        state.on_gossip(gossiped(POLICIES_DOC, policies, other))
        assert state.policy("cfg2").resolution == "lww"
        changed = LWWMap(other.peer_id)
        changed.merge(policies)
        entry = {"created": [1, 0], "writers": [], "resolution": "keep-all", "rank": []}
        changed.set(("cfg2", other.peer_id), entry, HLCTimestamp(wall_ms + 1, 0, other.peer_id))
        state.on_gossip(gossiped(POLICIES_DOC, changed.delta_since(policies.version()), other))
        assert state.dropped["bad_policy"] == 1 and state.policy("cfg2").resolution == "lww"
    finally:
        await state.stop()


async def test_a_create_race_lost_to_another_resolution_takes_the_winners() -> None:
    mesh = Cluster(2, PARAMS)
    await mesh.boot()
    try:
        early, late = mesh[0], mesh[1]
        await early.state.update("race", MapChange(set={"k": "early"}), ("keep-all", []))
        mesh.clock.advance(0.5)
        await late.state.update("race", MapChange(set={"k": "late"}))  # last writer wins, here
        await mesh.link((0, 1))
        assert await mesh.converged("race") == {"k": "early"}
        assert late.state.view("race")["policy"]["resolution"] == "keep-all"
        await late.state.update("race", MapChange(set={"k": "late again"}))
        assert await mesh.converged("race") == {"k": "late again"}
    finally:
        await mesh.close()
