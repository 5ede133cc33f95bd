"""MVMap: concurrent writes of a key are all kept until a writer replaces them, whatever order deltas take."""

from __future__ import annotations

import itertools
import random

import pytest

from f0mesh.crdt import HLC, MVMap, VectorClock
from f0mesh.crdt.codec import pack, unpack
from f0mesh.crdt.mv_map import MAX_SIBLINGS


def _replicas(n: int) -> tuple[list[MVMap], list[HLC]]:
    ticks = itertools.count(1_000_000)
    clock = lambda: next(ticks)  # noqa: E731  one shared wall clock, strictly increasing
    names = [f"r{i}" for i in range(n)]
    return [MVMap(name) for name in names], [HLC(name, clock=clock) for name in names]


def test_concurrent_writes_are_kept_side_by_side_until_a_writer_replaces_them() -> None:
    (a, b, c), (ha, hb, hc) = _replicas(3)
    a.set("k", "from a", ha.now())
    b.set("k", "from b", hb.now())
    a.merge(b.delta_since(a.version()))
    b.merge(a.delta_since(b.version()))
    assert [s[3] for s in a.siblings("k")] == [s[3] for s in b.siblings("k")] == ["r0", "r1"]
    assert a.open_keys() == ["k"] and a.get("k") == b.get("k") == "from b"  # LWW pick by default
    assert a.get("k", rank={"r0": 2, "r1": 1}) == "from a"

    c.merge(a.delta_since(VectorClock()))
    c.set("k", "resolved", hc.now())  # c saw both: its write replaces them
    a.merge(c.delta_since(a.version()))
    b.merge(c.delta_since(b.version()))
    assert a.siblings("k") == b.siblings("k") == c.siblings("k") and len(a.siblings("k")) == 1
    assert a.open_keys() == [] and b.get("k") == "resolved"

    # a stale replica's old write cannot come back: the resolving write saw it
    stale = MVMap("r9")
    stale.merge(b.delta_since(VectorClock()))
    stale.merge(MVMap.from_bytes(a.to_bytes()))
    assert stale.siblings("k") == a.siblings("k")


@pytest.mark.parametrize("seed", range(5))
def test_replicas_converge_whatever_the_order_of_deltas(seed: int) -> None:
    rng = random.Random(seed)
    replicas, clocks = _replicas(3)
    for _round in range(40):
        i = rng.randrange(3)
        if rng.random() < 0.6:
            key = rng.choice("xyz")
            if rng.random() < 0.8:
                replicas[i].set(key, rng.randrange(100), clocks[i].now())
            else:
                replicas[i].delete(key, clocks[i].now())
        else:
            j = rng.randrange(3)
            replicas[j].merge(MVMap.from_bytes(replicas[i].delta_since(replicas[j].version()).to_bytes()))
    for _sweep in range(2):
        for i, j in itertools.permutations(range(3), 2):
            replicas[j].merge(replicas[i].delta_since(replicas[j].version()))
    first = replicas[0]
    for other in replicas[1:]:
        assert other == first and other.items() == first.items()
    assert MVMap.from_bytes(first.to_bytes()) == first


def test_siblings_that_claim_to_have_seen_each_other_or_are_unsorted_are_refused() -> None:
    (a, b, _c), (ha, hb, _hc) = _replicas(3)
    a.set("k", 1, ha.now())
    b.set("k", 2, hb.now())
    a.merge(b)
    wire = a.to_bytes()
    fields = unpack(wire)
    key, sibs = fields[4][0]
    swapped = [*fields[:4], [[key, list(reversed(sibs))]], *fields[5:]]
    with pytest.raises(ValueError, match="sorted"):
        MVMap.from_bytes(pack(swapped))
    sibs[0][5] = ["r1", 99]  # r0's write now claims to have seen r1's
    with pytest.raises(ValueError):
        MVMap.from_bytes(pack([*fields[:4], [[key, sibs]], *fields[5:]]))


def test_a_delta_that_would_leave_too_many_siblings_is_refused_before_it_merges() -> None:
    target = MVMap("me")
    for i in range(MAX_SIBLINGS):  # writers none of whom saw another: siblings side by side
        writer = MVMap(f"w{i}")
        writer.set("k", i, HLC(f"w{i}", clock=lambda: 1_000_000).now())
        target.admit(writer)
        target.merge(writer)
    assert len(target.siblings("k")) == MAX_SIBLINGS
    delta = MVMap("x")
    delta.set("k", "one too many", HLC("x", clock=lambda: 1_000_000).now())
    with pytest.raises(ValueError, match="concurrent writers"):
        target.admit(delta)
