"""A replica fed hostile counters and clocks stays usable, and a store it cannot load does not stop it
(issue 18): one delta must not brick a node, stop its clock, or make the next start fail."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from f0mesh.crdt import HLCTimestamp, LWWMap
from f0mesh.crdt.codec import pack, pack_value
from f0mesh.crdt.hlc import MAX_LOGICAL
from f0mesh.crdt.replicated import FORMAT
from f0mesh.identity import Identity
from f0mesh.state import MapChange
from f0mesh.state.sync import gossip_payload, parse_versions
from f0mesh.store import Store

from .kit import Clock, MemoryStateStore, solo

TOP = 2**64 - 1


def forged_registry(victim: str, seq: int, wall_ms: int, logical: int = 0) -> bytes:
    """What the attacker of issue 18 gossiped: the victim's own registry entry, under its own id, at `seq`."""
    record = [HLCTimestamp(wall_ms, logical, victim), True, pack_value({"url": "x"}), victim, seq]
    return pack([FORMAT, "lww-map", {victim: [0, seq]}, {}, [[victim, record]]])


def from_peer(name: str, data: bytes, kind: str = "map") -> SimpleNamespace:
    return SimpleNamespace(origin="hostile", payload=gossip_payload(name, kind, data))


async def test_a_registry_delta_at_the_top_of_the_seq_range_does_not_brick_the_node() -> None:
    store, clock, me = MemoryStateStore(), Clock(), Identity.generate()
    violations: list[str] = []
    state = solo(store, clock, me, on_violation=lambda peer, why: violations.append(why))
    await state.start()
    try:
        for seq in (TOP, 2**48 + 1, 2**40):  # past the encoder, past the bound, within it but far ahead of us
            state.on_gossip(from_peer("peers", forged_registry(me.peer_id, seq, int(clock() * 1000))))
        state.refresh_membership()  # the node's own registry write, which overflowed before
        await state.update("notes", MapChange(set={"a": 1}))
        await state.flush()
        assert violations == ["malformed", "malformed", "bad_counter"]
    finally:
        await state.stop()
    again = solo(store, clock, me)
    await again.start()  # c5738a4 could not start again here
    try:
        assert (await again.update("notes", MapChange(set={"b": 2})))["value"] == {"a": 1, "b": 2}
        assert all("quarantined" not in doc for doc in again.documents())
    finally:
        await again.stop()


async def test_a_huge_logical_counter_ahead_does_not_stop_the_clock() -> None:
    store, clock, me = MemoryStateStore(), Clock(), Identity.generate()
    violations: list[str] = []
    state = solo(store, clock, me, on_violation=lambda peer, why: violations.append(why))
    await state.start()
    try:
        other = Identity.generate().peer_id
        ahead = int(clock() * 1000) + 55_000
        record = [HLCTimestamp(ahead, MAX_LOGICAL - 1, other), True, pack_value(1), other, 1]
        state.on_gossip(from_peer("notes", pack([FORMAT, "lww-map", {other: [0, 1]}, {}, [["k", record]]])))
        for i in range(3):  # c5738a4: ValueError from HLC.now() for the next ~55 s
            await state.update("notes", MapChange(set={f"k{i}": i}))
        assert state.hlc.now().logical < 2**32
        assert violations == ["malformed"]
    finally:
        await state.stop()


async def test_documents_that_do_not_load_are_quarantined_and_the_node_starts(tmp_path) -> None:
    clock, me = Clock(), Identity.generate()
    store = await Store.open(f"sqlite:///{tmp_path / 'mesh.db'}", me.peer_id)
    try:
        poisoned = forged_registry(me.peer_id, TOP, int(clock() * 1000))  # what a c5738a4 victim saved
        await store.put_state("doc/peers", "map", poisoned)
        await store.put_state("doc/notes", "map", b"\x00 not a crdt")
        await store.put_state("doc/tags", "set", LWWMap(me.peer_id).to_bytes())  # a map's bytes under "set"
        good = LWWMap(me.peer_id)
        good.set("kept", True, HLCTimestamp(int(clock() * 1000), 0, me.peer_id))
        await store.put_state("doc/good", "map", good.to_bytes())
        for attempt in range(2):  # and again after a restart: still listed, still starting
            state = solo(store, clock, me)
            await state.start()
            try:
                docs = {(d["name"], "quarantined" in d): d for d in state.documents()}
                assert {name for name, aside in docs if aside} == {"peers", "notes", "tags"}, attempt
                assert "seq" in docs["peers", True]["quarantined"]
                assert docs["notes", True]["bytes"] == len(b"\x00 not a crdt")
                assert ("good", False) in docs and ("peers", False) in docs  # a fresh registry
                assert state.view("good")["value"] == {"kept": True}
                await state.update("notes", MapChange(set={"new": 1}))
            finally:
                await state.stop()
        assert await store.get_state("quarantine/peers") == ("map", poisoned)
    finally:
        await store.close()


def test_a_version_vector_counting_past_the_seq_bound_is_malformed() -> None:
    message = {"t": "state", "op": "versions", "docs": [["notes", "map", {"someone": TOP}]]}
    with pytest.raises(ValueError, match="past"):
        parse_versions(message, 10)
    honest = parse_versions({**message, "docs": [["notes", "map", {"someone": 7}]]}, 10)
    assert honest["notes"][1].get("someone") == 7
