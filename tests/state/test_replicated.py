"""ReplicatedState over real gossip engines on an in-memory network: convergence, anti-entropy after a
partition, paging, restart from the store, what peers send validated, membership and tombstones."""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from types import SimpleNamespace

import pytest
from gossip.meshkit import wait_until

from f0mesh.crdt import HLC, LWWElementSet, LWWMap
from f0mesh.identity import Identity
from f0mesh.peer_record import PeerRecord
from f0mesh.state import ListChange, MapChange, SetChange, parse_id
from f0mesh.state.sync import gossip_payload
from f0mesh.store import Store

from .kit import PARAMS, Clock, Cluster, MemoryStateStore, gossiped, signed, solo


@pytest.fixture
async def cluster_of() -> AsyncIterator[Callable]:
    clusters: list[Cluster] = []

    async def build(n: int, *links: tuple[int, int], **params) -> Cluster:
        cluster = Cluster(n, replace(PARAMS, **params))
        clusters.append(cluster)
        await cluster.boot()
        await cluster.link(*links)
        return cluster

    yield build
    for cluster in clusters:
        await cluster.close()


async def test_changes_spread_and_every_kind_converges(cluster_of) -> None:
    mesh = await cluster_of(3, (0, 1), (1, 2))
    await mesh[0].state.update("cfg", MapChange(set={"a": 1, "b": {"deep": [1, 2]}}))
    await mesh[2].state.update("tags", SetChange(add=["x", "y", 7]))
    first = await mesh[0].state.update("log", ListChange(append=["first", "second"]))
    for name in ("cfg", "tags", "log"):
        await mesh.converged(name)  # seen everywhere, so the changes below come causally after
    await mesh[2].state.update("cfg", MapChange(set={"c": "three"}, delete=["a"]))
    await mesh[2].state.update("log", ListChange(insert=[(None, ["zeroth"])]))
    await mesh[1].state.update("log", ListChange(delete=[parse_id(first["ids"][1])]))
    await mesh[1].state.update("tags", SetChange(remove=["y"]))

    assert await mesh.converged("cfg") == {"b": {"deep": [1, 2]}, "c": "three"}
    assert await mesh.converged("tags") == [7, "x"]
    assert await mesh.converged("log") == ["zeroth", "first"]
    assert all(not r.state.dropped for r in mesh.replicas)


async def test_deltas_merged_in_any_order_with_duplicates_give_one_state() -> None:
    clock = Clock()
    writers = [solo(MemoryStateStore(), clock) for _ in range(3)]
    for writer in writers:
        await writer.start()
    steps = [
        (0, "doc", MapChange(set={"k": "w0", "only0": 0})),
        (1, "doc", MapChange(set={"k": "w1"}, delete=["only0"])),
        (2, "doc", MapChange(delete=["k"])),
        (0, "doc", MapChange(set={"late": True})),
        (1, "set", SetChange(add=["e", "f"])),
        (2, "set", SetChange(remove=["e"])),
        (0, "list", ListChange(append=["a0", "a1"])),
        (1, "list", ListChange(append=["b0"])),
    ]
    for index, name, change in steps:
        clock.advance(0.001)  # each write is later than the previous one, and none saw the others
        await writers[index].update(name, change)
    payloads = [p for w in writers for p in w._gossip.published if p["name"] not in ("peers", "_policies")]
    assert len(payloads) == len(steps)

    def replay(order: list) -> list:
        reader = solo(MemoryStateStore(), clock)
        for payload in order:
            reader.on_gossip(SimpleNamespace(origin="o", payload=payload))
        return [reader.view(name) for name in ("doc", "set", "list")]

    expected = replay(payloads)
    rng = random.Random(8)
    for _ in range(30):
        order = payloads + rng.sample(payloads, 4)
        rng.shuffle(order)
        assert replay(order) == expected
    assert [view["value"] for view in expected[:2]] == [{"late": True}, ["f"]]
    assert sorted(expected[2]["value"]) == ["a0", "a1", "b0"]
    assert expected[2]["value"].index("a0") + 1 == expected[2]["value"].index("a1")


async def test_partition_heals_by_anti_entropy_and_conflicts_are_listed(cluster_of) -> None:
    mesh = await cluster_of(4, (0, 1), (1, 2), (2, 3), (3, 0))
    await mesh[0].state.update("cfg", MapChange(set={"color": "grey", "size": 0}))
    await mesh[0].state.update("members", SetChange(add=["x"]))
    await mesh.converged("cfg")
    await mesh.converged("members")

    await mesh.unlink((1, 2), (3, 0))  # {0, 1} | {2, 3}
    await mesh[0].state.update("cfg", MapChange(set={"color": "red", "left": 1}))
    await mesh[1].state.update("cfg", MapChange(set={"size": 1}))
    await mesh[3].state.update("cfg", MapChange(set={"color": "blue", "size": 2, "right": 1}))
    await mesh[0].state.update("members", SetChange(remove=["x"]))
    await mesh[2].state.update("members", SetChange(add=["x", "y"]))
    left = await mesh.converged("cfg", [mesh[0], mesh[1]])
    right = await mesh.converged("cfg", [mesh[2], mesh[3]])
    assert (left["color"], right["color"]) == ("red", "blue")
    assert "right" not in left and "left" not in right

    await mesh.link((1, 2))  # heal through one link: the others learn by the rounds it triggers
    final = await mesh.converged("cfg")
    members = await mesh.converged("members")
    assert final["left"] == final["right"] == 1 and final["color"] in ("red", "blue")
    assert members in (["y"], ["x", "y"])

    conflicts = [c for r in mesh.replicas for c in r.state.conflicts("cfg")]
    assert {c["key"] for c in conflicts} == {"color", "size"}
    for conflict in conflicts:
        assert conflict["kept"] == final[conflict["key"]]
        assert conflict["discarded"] != conflict["kept"]
        assert conflict["kept_ts"] > conflict["discarded_ts"]
        assert conflict["resolution"].startswith("last writer wins")
    set_conflicts = [c for r in mesh.replicas for c in r.state.conflicts("members")]
    assert {(c["key"], c["kept"], c["discarded"]) for c in set_conflicts} == {
        ("x", "remove" if members == ["y"] else "add", "add" if members == ["y"] else "remove")
    }
    json.dumps(conflicts + set_conflicts)  # JSON-safe as the API returns them


async def test_reconnecting_replica_catches_up_with_a_delta(cluster_of) -> None:
    mesh = await cluster_of(3, (0, 1), (1, 2))
    await mesh[0].state.update("doc", MapChange(set={f"k{i}": "x" * 50 for i in range(200)}))
    await mesh.converged("doc")
    await mesh.unlink((1, 2))
    await mesh[0].state.update("doc", MapChange(set={"new1": 1, "new2": 2}, delete=["k0"]))
    await mesh.converged("doc", [mesh[0], mesh[1]])
    mesh[2].endpoint.received.clear()
    await mesh.link((1, 2))
    await mesh.converged("doc")
    deltas = [m for m in mesh[2].endpoint.received if m["op"] == "delta" and m["name"] == "doc"]
    assert deltas, "anti-entropy sent nothing"
    for message in deltas:
        delta = LWWMap.from_bytes(message["data"])
        assert set(delta.to_dict()) <= {"new1", "new2"}
        assert len(message["data"]) < 1000  # the 200 keys it already had did not travel again


async def test_large_changes_travel_by_anti_entropy_in_pages(cluster_of) -> None:
    mesh = await cluster_of(2, (0, 1), page_bytes=1024, max_gossip_delta_bytes=512)
    await mesh[0].state.update("big", MapChange(set={f"k{i}": "v" * 100 for i in range(100)}))
    await mesh.converged("big")
    pages = [m for m in mesh[1].endpoint.received if m["op"] == "delta" and m["name"] == "big"]
    assert all(len(m["data"]) <= 1024 for m in pages)
    assert max(Counter(m["xfer"] for m in pages).values()) > 10  # one delta, many pages


async def test_restart_from_the_store_keeps_state_and_the_clock_moves_on(tmp_path) -> None:
    clock = Clock()
    identity = Identity.generate()
    url = f"sqlite:///{tmp_path / 'state.db'}"
    store = await Store.open(url, identity.peer_id)
    state = solo(store, clock, identity)
    await state.start()
    await state.update("cfg", MapChange(set={"a": 1, "b": [1, 2]}))
    await state.update("tags", SetChange(add=["x", "y"], remove=["x"]))
    before_list = await state.update("log", ListChange(append=["one", "two"]))
    views = {name: state.view(name) for name in ("cfg", "tags", "log")}
    await state.stop()
    await store.close()

    clock.advance(-30)  # the wall clock stepped back across the restart
    store = await Store.open(url, identity.peer_id)
    again = solo(store, clock, identity)
    await again.start()
    try:
        assert {name: again.view(name) for name in views} == views
        assert again.view("peers")["value"][identity.peer_id]["status"] == "alive"
        await again.update("cfg", MapChange(set={"a": 2}))
        assert again.view("cfg")["value"]["a"] == 2  # later than the saved write despite the clock
        after = await again.update("log", ListChange(append=["three"]))
        assert after["value"] == ["one", "two", "three"]
        assert after["inserted"][0] not in before_list["ids"]
    finally:
        await again.stop()
        await store.close()


async def test_bad_deltas_are_dropped_counted_and_never_raise() -> None:
    clock = Clock()
    violations: list[tuple[str, str]] = []
    state = solo(
        MemoryStateStore(),
        clock,
        on_violation=lambda peer, reason: violations.append((peer, reason)),
        max_documents=5,
        max_document_bytes=4096,
    )
    await state.start()
    await state.update("tags", SetChange(add=["x"]))
    w = Identity.generate()

    def written(name: str, value: object, ahead_s: float = 0.0) -> LWWMap:
        delta = LWWMap("w")
        delta.set("k", value, HLC(w.peer_id, clock=lambda: int((clock() + ahead_s) * 1000)).now())
        return signed(name, delta, w)

    good, big, ahead = written("doc", 1), written("doc", "v" * 5000), written("doc", 1, 600)
    int_stamped = LWWMap("w")
    int_stamped.set("k", 1, 5, origin=w.peer_id)
    signed("doc", int_stamped, w)
    payloads = {
        "malformed": [
            "not an object",
            {"name": "doc", "kind": "map", "delta": "!!! not base64"},
            {"name": "doc", "kind": "map", "delta": "anVuaw=="},  # b"junk"
            {"name": "bad name!", "kind": "map", "delta": ""},
            {"name": "doc", "kind": "tree", "delta": ""},
            gossip_payload("doc", "map", int_stamped.to_bytes()),
        ],
        "kind_mismatch": [gossiped("tags", good).payload],  # no signature check: refused before that
        "too_large": [gossiped("doc", big).payload],
        "clock_skew": [gossiped("doc", ahead).payload],
    }
    for payloads_of_reason in payloads.values():
        for payload in payloads_of_reason:
            state.on_gossip(SimpleNamespace(origin="evil", payload=payload))
    state.on_gossip(gossiped("doc", good))  # fills the last free slot (peers, policies, topics, tags, doc)
    state.on_gossip(gossiped("other", written("other", 1)))
    for message in (
        {"t": "state", "op": "nope"},
        {"t": "state", "op": "versions", "docs": "x"},
        {"t": "state", "op": "versions", "docs": [["doc", "map", {"o": -1}]]},
        {
            "t": "state",
            "op": "delta",
            "name": "doc",
            "kind": "map",
            "xfer": 1,
            "page": 1,
            "pages": 2,
            "data": b"",
        },
        {
            "t": "state",
            "op": "delta",
            "name": "doc",
            "kind": "map",
            "xfer": 1,
            "page": 0,
            "pages": 1,
            "data": "x",
        },
    ):
        await state.on_ctl("evil", message)
    assert dict(state.dropped) == {
        "malformed": 6 + 5,
        "kind_mismatch": 1,
        "too_large": 1,
        "clock_skew": 1,
        "too_many_documents": 1,
    }
    # What only a broken or hostile peer sends is held against it; limits and conflicts are not.
    assert sorted(Counter(violations).items()) == [
        (("evil", "clock_skew"), 1),
        (("evil", "malformed"), 6 + 5),
    ]
    assert [d["name"] for d in state.documents()] == ["_policies", "_topics", "doc", "peers", "tags"]
    assert state.view("doc")["value"] == {"k": 1}
    await state.stop()


async def test_tombstones_collected_keep_state_bounded_over_10000_cycles() -> None:
    clock = Clock()
    store = MemoryStateStore()
    state = solo(store, clock, tombstone_horizon_s=20.0)
    await state.start()
    writer = Identity.generate().peer_id  # the same stamps and origins as the replica writes
    uncollected = LWWElementSet(writer)
    hlc = HLC(writer, clock=lambda: int(clock() * 1000))
    sizes = []
    for batch in range(200):  # 50 add/remove cycles per change, on a set and on a map: 10,000 each
        clock.advance(5.0)
        names = [f"e{batch * 50 + i}" for i in range(50)]
        await state.update("set", SetChange(add=names, remove=names))
        await state.update("map", MapChange(set=dict.fromkeys(names, 1), delete=names))
        for name in names:
            uncollected.add(name, hlc.now())
            uncollected.remove(name, hlc.now())
        if batch % 5 == 4:
            state.collect_tombstones()
            await state.flush()
            sizes.append(len(store.rows["doc/set"][1]))
    assert state.view("set")["value"] == [] and state.view("map")["value"] == {}
    assert len(store.rows["doc/map"][1]) < len(store.rows["doc/set"][1])
    # at most the last ~45 s of records stay (20 s horizon + 25 s between collections): a plateau
    assert max(sizes) < len(uncollected.to_bytes()) / 10
    assert max(sizes[2:]) <= 1.1 * min(sizes[2:])


async def test_leave_gone_refute_and_forget(cluster_of) -> None:
    mesh = await cluster_of(4, (0, 1), (1, 2), (0, 2))
    lone = mesh[3]
    await mesh.converged("peers", mesh.replicas[:3])
    # 0 knows 3 from a signed record (as from peer exchange), though they are not linked
    mesh[0].state.peer_seen(PeerRecord.create(lone.identity, "http://10.0.0.4:8700"))
    await wait_until(lambda: mesh[1].status_of(lone) == "alive", 5, "1 to learn of 3")

    await mesh[2].shutdown()
    for replica in (mesh[0], mesh[1]):
        await wait_until(lambda r=replica: r.status_of(mesh[2]) == "left", 5, "the leave to arrive")

    mesh.clock.advance(PARAMS.gone_after_s + 1)
    mesh[0].state.refresh_membership()
    await wait_until(lambda: mesh[1].status_of(lone) == "gone", 5, "3 marked gone")
    assert mesh[0].status_of(mesh[1]) == "alive"  # linked peers are never marked gone

    await mesh.link((3, 0))  # 3 comes back, sees itself called gone, and refutes it
    for replica in (mesh[0], mesh[1]):
        await wait_until(lambda r=replica: r.status_of(lone) == "alive", 5, "3 alive again")

    registry = mesh[0].state.get("peers").crdt
    mesh.clock.advance(PARAMS.tombstone_horizon_s + 1)
    mesh[0].state.refresh_membership()  # 2 left a day ago: forgotten
    assert mesh[2].peer_id not in registry.to_dict()
    mesh.clock.advance(PARAMS.tombstone_horizon_s + 1)
    assert mesh[0].state.collect_tombstones() >= 1
    assert registry.timestamp(mesh[2].peer_id) is None
