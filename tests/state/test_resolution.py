"""Resolution policies chosen in a document's signed policy: last writer wins, ranked writer wins, keep all.

Three replicas on a MemoryNetwork (tests/state/kit.py) that all name each other as writers; two of them
write one key while cut off from each other, then meet.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from types import SimpleNamespace

import pytest

from f0mesh.crdt import HLCTimestamp, LWWMap, MVMap
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


async def test_a_rank_list_names_peer_ids_only() -> None:
    """A rank entry that was no PeerId (the API takes 40-60 characters) made a policy no replica could read:
    the map stood without one, and the next write without a resolution claimed last-writer-wins, rebuilt
    the map as the other kind under its own save, and answered 500 (found by the API fuzz)."""
    clock, me = Clock(), Identity.generate()
    state = solo(MemoryStateStore(), clock, identity=me)
    await state.start()
    try:
        with pytest.raises(InvalidChange) as bad:
            await state.update("cfg", MapChange(set={"a": 1}), ("ranked", ["x" * 40, me.peer_id]))
        assert bad.value.code == "bad_resolution" and "no PeerId" in str(bad.value)
        assert "cfg" not in {doc["name"] for doc in state.documents()}
        await state.update("cfg", MapChange(set={"a": 2}))
        view = state.view("cfg")
        assert view["value"] == {"a": 2} and view["policy"]["resolution"] == "lww"
    finally:
        await state.stop()


class _HeldStore(MemoryStateStore):
    """Holds the next save of a document until released: a policy can arrive while a write is saved."""

    def __init__(self) -> None:
        super().__init__()
        self.hold: asyncio.Event | None = None
        self.waiting = asyncio.Event()

    async def put_state(self, name: str, kind: str, data: bytes) -> None:
        if self.hold is not None and name == "doc/race":
            self.waiting.set()
            await asyncio.wait_for(self.hold.wait(), 5)
        await super().put_state(name, kind, data)


def _foreign_policy(
    clock: Clock, other: Identity, resolution: str, created_ms: int, writer: str
) -> SimpleNamespace:
    """other's signed policy for "race", created at created_ms (before this node's, it wins the race),
    naming writer."""
    policies = LWWMap(other.peer_id)
    entry: dict = {"created": [created_ms, 0], "writers": [writer]}
    if resolution != "lww":
        entry |= {"resolution": resolution, "rank": []}
    policies.set(("race", other.peer_id), entry, HLCTimestamp(int(clock() * 1000), 0, other.peer_id))
    return gossiped(POLICIES_DOC, policies, other)


@pytest.mark.parametrize("exists", [False, True], ids=["create", "rewrite"])
async def test_a_policy_arriving_while_a_write_is_saved_is_the_one_that_holds(exists: bool) -> None:
    """The winner's policy, arriving between a write's save and its adoption, decides the map's kind. A
    map it rebuilt under the save made the adoption merge two kinds (TypeError, a 500); a map this write
    created kept the loser's kind under the winner's policy."""
    clock, me, other = Clock(), Identity.generate(), Identity.generate()
    store = _HeldStore()
    state = solo(store, clock, identity=me)
    await state.start()
    try:
        if exists:
            await state.update("race", MapChange(set={"k": "mine"}))  # last writer wins, here
        store.hold = asyncio.Event()
        write = asyncio.ensure_future(
            state.update("race", MapChange(set={"k": "held"}), None if exists else ("keep-all", []))
        )
        await asyncio.wait_for(store.waiting.wait(), 5)
        # a create race: a millisecond before this node's own create, or before anything here
        created_ms = state.policy("race").created[0] - 1 if exists else 1
        winner = "keep-all" if exists else "lww"
        state.on_gossip(_foreign_policy(clock, other, winner, created_ms, me.peer_id))
        assert not state.dropped["bad_policy"]
        store.hold.set()
        await asyncio.wait_for(write, 5)
        assert state.view("race")["policy"]["resolution"] == winner
        assert isinstance(state._docs["race"].crdt, MVMap) == (winner == "keep-all")
        await state.update("race", MapChange(set={"k": "after"}))
        assert state.view("race")["value"] == {"k": "after"}
    finally:
        await state.stop()
