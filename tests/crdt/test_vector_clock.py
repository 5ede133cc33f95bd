"""Vector clocks: merge is a join (pointwise max) and compare is the causal partial order."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from f0mesh.crdt import VectorClock

SETTINGS = settings(max_examples=200, deadline=None)

clocks = st.dictionaries(st.sampled_from(["a", "b", "c", "d"]), st.integers(0, 4)).map(VectorClock)
MIRROR = {"before": "after", "after": "before", "equal": "equal", "concurrent": "concurrent"}


def merged(a: VectorClock, b: VectorClock) -> VectorClock:
    result = a.copy()
    result.merge(b)
    return result


def test_hand_example() -> None:
    a, b = VectorClock(), VectorClock()
    assert a.compare(b) == "equal"
    assert a.increment("x") == 1
    assert a.increment("x") == 2
    assert a.get("x") == 2 and a.get("nobody") == 0
    assert a.compare(b) == "after" and b.compare(a) == "before"
    b.increment("y")
    assert a.compare(b) == "concurrent"
    assert not a.dominates(b) and not b.dominates(a)
    b.merge(a)
    assert b.to_dict() == {"x": 2, "y": 1}
    assert b.compare(a) == "after" and b.dominates(a)
    assert a.dominates(a.copy())
    assert b.nodes() == ["x", "y"]


def test_zero_entries_mean_absent() -> None:
    assert VectorClock({"a": 0, "b": 2}) == VectorClock({"b": 2})
    assert VectorClock({"a": 0}).to_dict() == {}


def test_copy_is_independent() -> None:
    a = VectorClock({"a": 1})
    b = a.copy()
    b.increment("a")
    assert a.get("a") == 1 and b.get("a") == 2


@pytest.mark.parametrize("entries", [{"a": -1}, {"a": 1.5}, {"a": True}, {1: 1}])
def test_invalid_entries_are_refused(entries: dict) -> None:
    with pytest.raises((TypeError, ValueError)):
        VectorClock(entries)


@SETTINGS
@given(clocks, clocks)
def test_merge_is_commutative_and_pointwise_max(a: VectorClock, b: VectorClock) -> None:
    ab, ba = merged(a, b), merged(b, a)
    assert ab == ba
    for node in {*a.nodes(), *b.nodes()}:
        assert ab.get(node) == max(a.get(node), b.get(node))
    assert ab.dominates(a) and ab.dominates(b)


@SETTINGS
@given(clocks, clocks, clocks)
def test_merge_is_associative(a: VectorClock, b: VectorClock, c: VectorClock) -> None:
    assert merged(merged(a, b), c) == merged(a, merged(b, c))


@SETTINGS
@given(clocks)
def test_merge_is_idempotent(a: VectorClock) -> None:
    assert merged(a, a) == a
    same = a.copy()
    same.merge(same)
    assert same == a


@SETTINGS
@given(clocks, clocks)
def test_compare_is_the_pointwise_partial_order(a: VectorClock, b: VectorClock) -> None:
    nodes = {*a.nodes(), *b.nodes()}
    le = all(a.get(n) <= b.get(n) for n in nodes)
    ge = all(a.get(n) >= b.get(n) for n in nodes)
    expected = "equal" if le and ge else "before" if le else "after" if ge else "concurrent"
    assert a.compare(b) == expected
    assert b.compare(a) == MIRROR[expected]
    assert a.dominates(b) == (expected in ("after", "equal"))
    assert (a == b) == (expected == "equal")


@SETTINGS
@given(clocks, st.sampled_from(["a", "e"]))
def test_increment_moves_strictly_after(a: VectorClock, node: str) -> None:
    before = a.copy()
    assert a.increment(node) == before.get(node) + 1
    assert a.compare(before) == "after"


@SETTINGS
@given(clocks)
def test_dict_round_trip(a: VectorClock) -> None:
    assert VectorClock.from_dict(a.to_dict()) == a
    assert list(a.to_dict()) == sorted(a.to_dict())
