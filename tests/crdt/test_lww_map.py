"""LWW map: deterministic tie-breaks, conflict log, delta sync and bytes that agree with full-state merges."""

from dataclasses import dataclass, field
from typing import Any

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from f0mesh.crdt import HLC, LWWElementSet, LWWMap, VectorClock

SETTINGS = settings(max_examples=150, deadline=None)
NAMES = ("r0", "r1", "r2")
KEYS = ["k", "name", 3, ("t", "x")]
VALUES = [
    None,
    True,
    0,
    1,
    2.5,
    "v",
    "w",
    b"raw",
    [1, "two"],
    {"a": 1, "b": [None]},
    {"b": [None], "a": 1},
    {},
]

ops = st.one_of(
    st.tuples(
        st.just("set"), st.integers(0, 2), st.sampled_from(KEYS), st.sampled_from(VALUES), st.integers(0, 5)
    ),
    st.tuples(st.just("delete"), st.integers(0, 2), st.sampled_from(KEYS), st.none(), st.integers(0, 5)),
    st.tuples(st.just("sync"), st.integers(0, 2), st.integers(0, 2)),
)
histories = st.lists(ops, max_size=30)


@dataclass
class Run:
    replicas: list[LWWMap]
    deltas: list[bytes] = field(default_factory=list)
    snapshots: list[bytes] = field(default_factory=list)
    local_ops: list[tuple] = field(default_factory=list)


def run(history: list[tuple]) -> Run:
    result = Run([LWWMap(name) for name in NAMES])
    for op in history:
        if op[0] == "sync":
            result.replicas[op[2]].merge(result.replicas[op[1]])
            continue
        kind, index, key, value, ts = op
        replica = result.replicas[index]
        before = replica.version()
        if kind == "set":
            replica.set(key, value, ts)
        else:
            replica.delete(key, ts)
        result.deltas.append(replica.delta_since(before).to_bytes())
        result.snapshots.append(replica.to_bytes())
        result.local_ops.append(op)
    return result


def canonical(value: Any) -> bytes:
    """The tie-break key the map documents: msgpack bytes with object keys sorted."""
    if isinstance(value, dict):
        value = dict(sorted(value.items()))
    return msgpack.packb(value, use_bin_type=True)


def model(local_ops: list[tuple]) -> dict:
    """Latest ts wins; on a tie a set beats a delete, then the greater canonical value bytes win."""
    result = {}
    for key in KEYS:
        writes = [
            (ts, kind == "set", canonical(v) if kind == "set" else b"")
            for kind, _, k, v, ts in local_ops
            if k == key
        ]
        if writes:
            _, live, data = max(writes)
            if live:
                result[key] = msgpack.unpackb(data)
    return result


def clone(state: LWWMap) -> LWWMap:
    return LWWMap.from_bytes(state.to_bytes())


def join(*states: LWWMap) -> LWWMap:
    result = LWWMap()
    for state in states:
        result.merge(state)
    return result


def test_hand_example() -> None:
    a, b = LWWMap("a"), LWWMap("b")
    a.set("colour", "red", 1)
    a.set("size", 3, 1)
    b.set("colour", "blue", 2)
    b.delete("size", 2)
    b.set("shape", {"sides": 4, "name": "square"}, 1)
    a.merge(b)
    assert a.to_dict() == {"colour": "blue", "shape": {"name": "square", "sides": 4}}
    assert a.get("size") is None and a.get("size", "gone") == "gone"
    assert "colour" in a and "size" not in a
    # Canonical order is by encoded key (shorter strings first), the same on every replica.
    assert a.items() == [("shape", {"name": "square", "sides": 4}), ("colour", "blue")]
    assert a.timestamp("size") == 2 and a.timestamp("nothing") is None
    b.merge(a)
    assert b == a and b.items() == a.items()


def test_ties_are_broken_the_same_way_on_every_replica() -> None:
    a, b, c = LWWMap("a"), LWWMap("b"), LWWMap("c")
    a.set("k", "apple", 7)
    b.set("k", "banana", 7)
    c.delete("k", 7)
    for order in [(a, b, c), (c, b, a), (b, c, a)]:
        assert join(*order).get("k") == "banana"  # set beats delete, then the greater value bytes
    assert join(a, c).get("k") == "apple"


def test_equal_values_written_with_keys_in_another_order_are_the_same_value() -> None:
    a, b = LWWMap("a"), LWWMap("b")
    a.set("k", {"x": 1, "y": 2}, 5)
    b.set("k", {"y": 2, "x": 1}, 5)
    ab = join(a, b)
    assert ab.get("k") == {"x": 1, "y": 2}
    assert ab.conflicts() == []
    assert join(a, b).to_bytes() == join(b, a).to_bytes()


def test_values_are_copied_in_and_out() -> None:
    m = LWWMap()
    value = {"list": [1, 2]}
    m.set("k", value, 1)
    value["list"].append(3)
    out = m.get("k")
    out["list"].append(4)
    assert m.get("k") == {"list": [1, 2]}


@pytest.mark.parametrize("value", [{1: "int key"}, {1, 2}, object(), 2**70, [b"ok", {"k": float}]])
def test_non_json_values_are_refused(value: object) -> None:
    m = LWWMap()
    with pytest.raises((TypeError, ValueError)):
        m.set("k", value, 1)
    assert m.version() == VectorClock()


def test_concurrent_writes_are_logged_as_conflicts_on_both_sides() -> None:
    a, b = LWWMap("a"), LWWMap("b")
    a.set("k", {"v": 1}, 5)
    b.set("k", {"v": 2}, 3)
    a_before = clone(a)
    a.merge(b)
    b.merge(a_before)
    expected = {
        "key": "k",
        "kept": {"v": 1},
        "discarded": {"v": 2},
        "kept_ts": 5,
        "discarded_ts": 3,
        "kept_deleted": False,
        "discarded_deleted": False,
        "kept_origin": "a",
        "discarded_origin": "b",
    }
    assert a.conflicts() == [expected]
    assert b.conflicts() == [expected]
    assert a.get("k") == b.get("k") == {"v": 1}


def test_concurrent_delete_and_set_conflict_records_the_delete() -> None:
    a, b = LWWMap("a"), LWWMap("b")
    a.set("k", "kept?", 1)
    b.delete("k", 2)
    a.merge(b)
    (entry,) = a.conflicts()
    assert entry["kept"] is None and entry["kept_deleted"] is True
    assert entry["discarded"] == "kept?" and entry["discarded_deleted"] is False


def test_sequential_overwrite_is_not_a_conflict() -> None:
    a, b = LWWMap("a"), LWWMap("b")
    a.set("k", 1, 1)
    b.merge(a)
    b.set("k", 2, 2)
    a.merge(b)
    assert a.get("k") == 2
    assert a.conflicts() == []


def test_conflict_log_is_bounded() -> None:
    m = LWWMap("m")
    for i in range(1_200):
        other = LWWMap(f"o{i}")
        other.set("k", i, i)
        m.merge(other)
    assert len(m.conflicts()) == 1_000
    assert m.conflicts()[-1]["kept"] == 1_199


def test_hlc_stamped_writes_from_two_nodes() -> None:
    clock_a, clock_b = HLC("node-a", clock=lambda: 1_000), HLC("node-b", clock=lambda: 1_000)
    a, b = LWWMap(), LWWMap()
    a.set("k", "a", clock_a.now())
    b.set("k", "b", clock_b.now())
    ab, ba = join(a, b), join(b, a)
    assert ab.get("k") == ba.get("k") == "b"  # equal wall and logical: node "node-b" > "node-a"
    assert ab.version() == VectorClock({"node-a": 1, "node-b": 1})
    assert LWWMap.from_bytes(ab.to_bytes()) == ab


def test_tombstone_collection_keeps_size_bounded() -> None:
    m = LWWMap("m")
    sizes = []
    for cycle in range(10_000):
        m.set(f"key{cycle}", cycle, 2 * cycle)
        m.delete(f"key{cycle}", 2 * cycle + 1)
        if cycle % 100 == 99:
            m.collect_tombstones(2 * cycle - 100)
            sizes.append(len(m.to_bytes()))
    assert max(sizes) <= 1.5 * sizes[1]
    assert m.to_dict() == {}


def test_tombstone_collection_respects_the_horizon() -> None:
    m = LWWMap("m")
    m.set("live", 1, 1)
    m.delete("old", 2)
    m.delete("new", 9)
    assert m.collect_tombstones(5) == 1
    assert m.timestamp("old") is None and m.timestamp("new") == 9
    assert m.to_dict() == {"live": 1}


def test_malformed_bytes_are_refused() -> None:
    m = LWWMap("m")
    m.set("k", {"a": 1, "b": 2}, 1)
    good = m.to_bytes()
    non_canonical = good.replace(b"\x82\xa1a\x01\xa1b\x02", b"\x82\xa1b\x02\xa1a\x01")
    assert non_canonical != good
    for data in (
        b"",
        good[:-1],
        non_canonical,
        LWWElementSet().to_bytes(),
        b"\x95\x02\xa7lww-map\x80\x80\x90",
    ):
        with pytest.raises(ValueError):
            LWWMap.from_bytes(data)


@SETTINGS
@given(histories)
def test_merge_of_all_replicas_matches_the_model(history: list[tuple]) -> None:
    played = run(history)
    assert join(*played.replicas).to_dict() == model(played.local_ops)


@SETTINGS
@given(histories)
def test_merge_is_commutative(history: list[tuple]) -> None:
    a, b, _ = run(history).replicas
    ab, ba = clone(a), clone(b)
    ab.merge(b)
    ba.merge(a)
    assert ab == ba
    assert ab.to_bytes() == ba.to_bytes()
    assert ab.to_dict() == ba.to_dict()


@SETTINGS
@given(histories)
def test_merge_is_associative(history: list[tuple]) -> None:
    a, b, c = run(history).replicas
    left = join(a, b)
    left.merge(c)
    right = join(b, c)
    a_right = clone(a)
    a_right.merge(right)
    assert left == a_right
    assert left.to_dict() == a_right.to_dict()


@SETTINGS
@given(histories)
def test_merge_is_idempotent(history: list[tuple]) -> None:
    a, b, _ = run(history).replicas
    twice = clone(a)
    twice.merge(a)
    twice.merge(twice)
    assert twice == a
    ab = join(a, b)
    ab.merge(a)
    assert ab == join(a, b)


@SETTINGS
@given(histories, st.data())
def test_any_delivery_order_with_duplicates_converges(history: list[tuple], data: st.DataObject) -> None:
    played = run(history)
    everything = join(*played.replicas)
    messages = (
        played.deltas + data.draw(st.lists(st.sampled_from(played.snapshots))) if played.snapshots else []
    )
    duplicates = data.draw(st.lists(st.sampled_from(messages), max_size=8)) if messages else []
    for _ in range(2):
        receiver = LWWMap()
        for message in data.draw(st.permutations(messages + duplicates)):
            receiver.merge(LWWMap.from_bytes(message))
        assert receiver == everything
        assert receiver.to_dict() == everything.to_dict() == model(played.local_ops)
        assert receiver.version() == everything.version()


@SETTINGS
@given(histories)
def test_delta_merge_equals_full_merge(history: list[tuple]) -> None:
    a, b, _ = run(history).replicas
    via_delta, via_full = clone(a), clone(a)
    via_delta.merge(LWWMap.from_bytes(b.delta_since(a.version()).to_bytes()))
    via_full.merge(b)
    assert via_delta == via_full
    assert via_delta.to_dict() == via_full.to_dict()
    assert via_delta.version() == via_full.version()
    assert via_delta.conflicts() == via_full.conflicts()
    assert b.delta_since(b.version()).to_dict() == {}


@SETTINGS
@given(histories)
def test_bytes_round_trip(history: list[tuple]) -> None:
    for state in run(history).replicas:
        again = LWWMap.from_bytes(state.to_bytes())
        assert again == state
        assert again.to_bytes() == state.to_bytes()
        assert again.to_dict() == state.to_dict()


@SETTINGS
@given(histories, st.data())
def test_corrupted_bytes_are_refused_or_decode_to_a_usable_state(
    history: list[tuple], data: st.DataObject
) -> None:
    original = run(history).replicas[0]
    raw = bytearray(original.to_bytes())
    for _ in range(data.draw(st.integers(1, 3))):
        raw[data.draw(st.integers(0, len(raw) - 1))] = data.draw(st.integers(0, 255))
    try:
        decoded = LWWMap.from_bytes(bytes(raw))
    except ValueError:
        return  # the usual outcome
    assert LWWMap.from_bytes(decoded.to_bytes()) == decoded
    decoded.to_dict()
    target = clone(original)
    try:
        target.merge(decoded)
    except TypeError:
        assert target == original  # refused before anything changed
    else:
        assert target.version().dominates(original.version())
