"""LWW-Element-Set: a join-semilattice whose delta sync and serialisation agree with full-state merges."""

from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from f0mesh.crdt import HLC, HLCTimestamp, LWWElementSet, LWWMap, VectorClock

SETTINGS = settings(max_examples=150, deadline=None)
NAMES = ("r0", "r1", "r2")
ELEMENTS = ["a", "b", 7, b"x", ("t", 1)]

ops = st.one_of(
    st.tuples(
        st.sampled_from(["add", "remove"]), st.integers(0, 2), st.sampled_from(ELEMENTS), st.integers(0, 6)
    ),
    st.tuples(st.just("sync"), st.integers(0, 2), st.integers(0, 2)),
)
histories = st.lists(ops, max_size=30)


@dataclass
class Run:
    replicas: list[LWWElementSet]
    deltas: list[bytes] = field(default_factory=list)  # one per local op, each holding just that op
    snapshots: list[bytes] = field(default_factory=list)  # full state after each local op
    local_ops: list[tuple] = field(default_factory=list)


def run(history: list[tuple]) -> Run:
    """Play a history on three replicas, where "sync" merges one replica's full state into another."""
    result = Run([LWWElementSet(name) for name in NAMES])
    for op in history:
        if op[0] == "sync":
            result.replicas[op[2]].merge(result.replicas[op[1]])
            continue
        kind, index, element, ts = op
        replica = result.replicas[index]
        before = replica.version()
        getattr(replica, kind)(element, ts)
        result.deltas.append(replica.delta_since(before).to_bytes())
        result.snapshots.append(replica.to_bytes())
        result.local_ops.append(op)
    return result


def clone(state: LWWElementSet) -> LWWElementSet:
    return LWWElementSet.from_bytes(state.to_bytes())


def join(*states: LWWElementSet) -> LWWElementSet:
    result = LWWElementSet()
    for state in states:
        result.merge(state)
    return result


def model(local_ops: list[tuple]) -> set:
    """Present iff some add is at least as late as every remove (add wins ties)."""
    present = set()
    for element in ELEMENTS:
        adds = [ts for kind, _, e, ts in local_ops if kind == "add" and e == element]
        removes = [ts for kind, _, e, ts in local_ops if kind == "remove" and e == element]
        if adds and (not removes or max(adds) >= max(removes)):
            present.add(element)
    return present


def test_hand_example() -> None:
    a, b = LWWElementSet("a"), LWWElementSet("b")
    a.add("apple", 1)
    a.add("pear", 2)
    b.add("plum", 1)
    b.remove("pear", 3)
    a.merge(b)
    assert a.elements() == {"apple", "plum"}
    assert "apple" in a and not a.contains("pear")
    assert a.version() == VectorClock({"a": 2, "b": 2})
    a.add("pear", 4)
    b.merge(a)
    assert b.elements() == {"apple", "pear", "plum"} == a.elements()
    assert b == a


def test_add_wins_a_tie_in_either_merge_order() -> None:
    a, b = LWWElementSet("a"), LWWElementSet("b")
    a.add("e", 5)
    b.remove("e", 5)
    assert join(a, b).contains("e") and join(b, a).contains("e")
    b.remove("e", 6)
    assert not join(a, b).contains("e") and not join(b, a).contains("e")


def test_hlc_timestamps_and_origins() -> None:
    clock_a, clock_b = HLC("node-a", clock=lambda: 1_000), HLC("node-b", clock=lambda: 1_000)
    a, b = LWWElementSet(), LWWElementSet()
    stamp = clock_a.now()
    a.add("x", stamp)
    b.merge(a)
    b.remove("x", clock_b.update(stamp))
    b.add("y", clock_b.now(), origin="explicit")
    a.merge(b)
    assert a.elements() == {"y"}
    assert a.version() == VectorClock({"node-a": 1, "node-b": 1, "explicit": 1})


def test_concurrent_add_and_remove_are_logged_as_conflicts() -> None:
    a, b = LWWElementSet("a"), LWWElementSet("b")
    a.add("e", 5)
    b.remove("e", 3)
    a_before = clone(a)
    a.merge(b)
    b.merge(a_before)
    for replica in (a, b):
        assert replica.conflicts() == [
            {
                "key": "e",
                "kept": "add",
                "discarded": "remove",
                "kept_ts": 5,
                "discarded_ts": 3,
                "kept_origin": "a",
                "discarded_origin": "b",
            }
        ]


def test_sequential_add_then_remove_is_not_a_conflict() -> None:
    a, b = LWWElementSet("a"), LWWElementSet("b")
    a.add("e", 1)
    b.merge(a)
    b.remove("e", 2)
    a.merge(b)
    assert not a.contains("e")
    assert a.conflicts() == []


def test_merging_other_types_is_refused() -> None:
    with pytest.raises(TypeError):
        LWWElementSet().merge(LWWMap())  # type: ignore[arg-type]


def test_one_timestamp_kind_per_state() -> None:
    numbers, stamps = LWWElementSet("n"), LWWElementSet("h")
    numbers.add("a", 1)
    numbers.add("b", 2.5)
    stamps.add("a", HLCTimestamp(1, 0, "h"))
    with pytest.raises(TypeError):
        numbers.add("c", "text")
    with pytest.raises(TypeError):
        numbers.merge(stamps)
    assert numbers.elements() == {"a", "b"}
    assert numbers.version() == VectorClock({"n": 2})
    with pytest.raises(TypeError):
        numbers.collect_tombstones(HLCTimestamp(5, 0, ""))


@pytest.mark.parametrize("element", [1.5, True, ["list"], {"a": 1}, ("ok", 2.0), 2**70])
def test_unserialisable_or_ambiguous_elements_are_refused(element: object) -> None:
    with pytest.raises((TypeError, ValueError)):
        LWWElementSet().add(element, 1)  # type: ignore[arg-type]


@pytest.mark.parametrize("ts", [None, True, float("nan"), (1, 2)])
def test_bad_timestamps_are_refused(ts: object) -> None:
    s = LWWElementSet()
    with pytest.raises((TypeError, ValueError)):
        s.add("e", ts)  # type: ignore[arg-type]
    assert s.version() == VectorClock()


@pytest.mark.parametrize(
    "data", [b"", b"\xc1", LWWMap().to_bytes(), b"\x95\x01\xa7lww-set\x80\x80\x91\x93\xa1a\xc0\xc0"]
)
def test_malformed_bytes_are_refused(data: bytes) -> None:
    with pytest.raises(ValueError):
        LWWElementSet.from_bytes(data)


def test_bytes_claiming_an_op_outside_the_op_set_are_refused() -> None:
    s = LWWElementSet("a")
    s.add("e", 1)
    forged = s.to_bytes().replace(b"\x81\xa1a\x92\x00\x01", b"\x80")
    with pytest.raises(ValueError, match="outside its op set"):
        LWWElementSet.from_bytes(forged)


def test_tombstone_collection_keeps_size_bounded() -> None:
    collected, kept = LWWElementSet("a"), LWWElementSet("a")
    sizes = []
    for cycle in range(10_000):
        for s in (collected, kept):
            s.add(("item", cycle), 2 * cycle)
            s.remove(("item", cycle), 2 * cycle + 1)
        if cycle % 100 == 99:
            collected.collect_tombstones(2 * cycle - 100)
            sizes.append(len(collected.to_bytes()))
    assert collected.elements() == kept.elements() == set()
    assert max(sizes) <= 1.5 * sizes[1]  # keys and seq numbers grow a few bytes; the record count does not
    assert len(kept.to_bytes()) > 20 * sizes[-1]
    assert collected.version() == kept.version() == VectorClock({"a": 20_000})


def test_tombstone_collection_respects_the_horizon_and_never_changes_membership() -> None:
    s = LWWElementSet("a")
    s.add("removed", 1)
    s.remove("removed", 2)
    s.remove("readded", 3)
    s.add("readded", 4)
    s.add("tie", 5)
    s.remove("tie", 5)
    s.add("recent", 10)
    s.remove("recent", 11)
    before = s.elements()
    assert s.collect_tombstones(9) == 4
    assert s.elements() == before == {"readded", "tie"}
    assert not s.contains("recent")
    assert s.collect_tombstones(9) == 0
    assert s.collect_tombstones(12) == 2


@SETTINGS
@given(histories)
def test_merge_of_all_replicas_matches_the_model(history: list[tuple]) -> None:
    played = run(history)
    assert join(*played.replicas).elements() == model(played.local_ops)


@SETTINGS
@given(histories)
def test_merge_is_commutative(history: list[tuple]) -> None:
    a, b, _ = run(history).replicas
    ab, ba = clone(a), clone(b)
    ab.merge(b)
    ba.merge(a)
    assert ab == ba
    assert ab.to_bytes() == ba.to_bytes()
    assert ab.elements() == ba.elements()


@SETTINGS
@given(histories)
def test_merge_is_associative(history: list[tuple]) -> None:
    a, b, c = run(history).replicas
    left, right = clone(a), clone(b)
    left.merge(b)
    left.merge(c)
    right.merge(c)
    a_right = clone(a)
    a_right.merge(right)
    assert left == a_right


@SETTINGS
@given(histories)
def test_merge_is_idempotent(history: list[tuple]) -> None:
    a, b, _ = run(history).replicas
    twice = clone(a)
    twice.merge(a)
    assert twice == a
    twice.merge(twice)
    assert twice == a
    ab = join(a, b)
    ab.merge(b)
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
    receivers = []
    for _ in range(2):
        receiver = LWWElementSet()
        for message in data.draw(st.permutations(messages + duplicates)):
            receiver.merge(LWWElementSet.from_bytes(message))
        receivers.append(receiver)
    for receiver in receivers:
        assert receiver == everything
        assert receiver.elements() == everything.elements() == model(played.local_ops)
        assert receiver.version() == everything.version()


@SETTINGS
@given(histories)
def test_delta_merge_equals_full_merge(history: list[tuple]) -> None:
    a, b, _ = run(history).replicas
    via_delta, via_full = clone(a), clone(a)
    delta = LWWElementSet.from_bytes(b.delta_since(a.version()).to_bytes())
    via_delta.merge(delta)
    via_full.merge(b)
    assert via_delta == via_full
    assert via_delta.elements() == via_full.elements()
    assert via_delta.version() == via_full.version()
    assert via_delta.conflicts() == via_full.conflicts()
    assert not b.delta_since(b.version()).elements()


@SETTINGS
@given(histories)
def test_bytes_round_trip(history: list[tuple]) -> None:
    for state in run(history).replicas:
        again = LWWElementSet.from_bytes(state.to_bytes())
        assert again == state
        assert again.to_bytes() == state.to_bytes()
        assert again.elements() == state.elements()
        delta = state.delta_since(VectorClock({"r0": 1}))
        assert LWWElementSet.from_bytes(delta.to_bytes()) == delta


def test_hlc_timestamps_round_trip_through_bytes() -> None:
    s = LWWElementSet()
    s.add("e", HLCTimestamp(5, 1, "n"))
    again = LWWElementSet.from_bytes(s.to_bytes())
    assert again == s and again.contains("e")


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
        decoded = LWWElementSet.from_bytes(bytes(raw))
    except ValueError:
        return  # the usual outcome
    assert LWWElementSet.from_bytes(decoded.to_bytes()) == decoded
    decoded.elements()
    target = clone(original)
    try:
        target.merge(decoded)
    except TypeError:
        assert target == original  # refused before anything changed
    else:
        assert target.version().dominates(original.version())
