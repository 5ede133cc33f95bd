"""RGA: concurrent inserts converge to one order whatever the delivery order, late anchors included."""

import itertools
import random
from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from f0mesh.crdt import RGA, LWWMap, VectorClock

SETTINGS = settings(max_examples=150, deadline=None)
NAMES = ("r0", "r1", "r2")

ops = st.one_of(
    st.tuples(st.just("insert"), st.integers(0, 2), st.integers(0, 50), st.integers(0, 99)),
    st.tuples(st.just("delete"), st.integers(0, 2), st.integers(0, 50)),
    st.tuples(st.just("sync"), st.integers(0, 2), st.integers(0, 2)),
)
histories = st.lists(ops, max_size=30)


@dataclass
class Run:
    replicas: list[RGA]
    deltas: list[bytes] = field(default_factory=list)  # one per local op, each holding just that op
    snapshots: list[bytes] = field(default_factory=list)


def run(history: list[tuple]) -> Run:
    """Play a history; positions are picked among each replica's currently visible elements."""
    result = Run([RGA(name) for name in NAMES])
    for op in history:
        if op[0] == "sync":
            result.replicas[op[2]].merge(result.replicas[op[1]])
            continue
        replica = result.replicas[op[1]]
        visible = replica.ids()
        before = replica.version()
        if op[0] == "insert":
            anchors = [None, *visible]
            replica.insert(anchors[op[2] % len(anchors)], op[3])
        elif visible:
            replica.delete(visible[op[2] % len(visible)])
        else:
            continue
        result.deltas.append(replica.delta_since(before).to_bytes())
        result.snapshots.append(replica.to_bytes())
    return result


def clone(state: RGA) -> RGA:
    return RGA.from_bytes(state.to_bytes())


def join(*states: RGA) -> RGA:
    result = RGA()
    for state in states:
        result.merge(state)
    return result


def test_hand_example() -> None:
    doc = RGA("a")
    h = doc.insert(None, "h")
    i = doc.insert(h, "i")
    doc.insert(i, "!")
    assert doc.to_list() == ["h", "i", "!"]
    doc.delete(i)
    assert doc.to_list() == ["h", "!"]
    doc.insert(i, "ey")  # a deleted element still anchors
    assert doc.to_list() == ["h", "ey", "!"]
    doc.insert(None, ">")
    assert doc.to_list() == [">", "h", "ey", "!"]
    assert len(doc.ids()) == 4
    assert doc.version() == VectorClock({"a": 6})


def test_concurrent_inserts_at_one_place_put_the_greater_id_first_everywhere() -> None:
    base = RGA("base")
    anchor = base.insert(None, "a")
    x, y = RGA("x"), RGA("y")
    x.merge(base)
    y.merge(base)
    x_id = x.insert(anchor, "from x")
    y_id = y.insert(anchor, "from y")
    assert x_id[0] == y_id[0] and y_id > x_id
    for order in itertools.permutations([base, x, y]):
        assert join(*order).to_list() == ["a", "from y", "from x"]


def test_concurrent_runs_are_not_interleaved() -> None:
    base = RGA("base")
    anchor = base.insert(None, "|")
    typists = [RGA(name) for name in ("p", "q", "r")]
    for typist, word in zip(typists, ("abc", "de", "fgh"), strict=True):
        typist.merge(base)
        last = anchor
        for char in word:
            last = typist.insert(last, char)
    results = {tuple(join(*order).to_list()) for order in itertools.permutations(typists)}
    assert len(results) == 1
    text = "".join(results.pop())
    assert text.startswith("|") and sorted(text[1:]) == sorted("abcdefgh")
    for word in ("abc", "de", "fgh"):
        assert word in text


def test_a_new_insert_goes_ahead_of_older_siblings_it_has_seen() -> None:
    a, b = RGA("a"), RGA("zzz")
    head = a.insert(None, "head")
    b.merge(a)
    for n in range(5):
        b.insert(head, n)
    a.merge(b)
    new = a.insert(head, "newest")
    assert new[0] > max(counter for counter, _ in b.ids())
    assert a.to_list()[:2] == ["head", "newest"]


def test_an_insert_whose_anchor_arrives_later_waits_for_it() -> None:
    a = RGA("a")
    first = a.insert(None, "first")
    only_first = a.delta_since(VectorClock())
    a.insert(first, "second")
    only_second = a.delta_since(only_first.version())
    receiver = RGA("r")
    receiver.merge(RGA.from_bytes(only_second.to_bytes()))
    assert receiver.to_list() == []
    assert receiver.version() == VectorClock()  # it holds op 2 but not op 1, so claims nothing
    receiver.merge(only_first)
    assert receiver.to_list() == ["first", "second"]
    assert receiver.version() == VectorClock({"a": 2})


def test_a_delete_that_arrives_before_its_insert_still_applies() -> None:
    a = RGA("a")
    x = a.insert(None, "x")
    insert_only = a.delta_since(VectorClock())
    a.delete(x)
    delete_only = a.delta_since(insert_only.version())
    receiver = RGA("r")
    receiver.merge(delete_only)
    receiver.merge(insert_only)
    assert receiver.to_list() == []
    assert receiver == a


def test_concurrent_deletes_of_one_element_converge() -> None:
    a = RGA("a")
    x = a.insert(None, "x")
    b = RGA("b")
    b.merge(a)
    a.delete(x)
    b.delete(x)
    ab, ba = join(a, b), join(b, a)
    assert ab == ba and ab.to_bytes() == ba.to_bytes()
    assert ab.to_list() == [] and ab.version() == VectorClock({"a": 2, "b": 2})


def test_local_errors() -> None:
    doc = RGA("a")
    with pytest.raises(KeyError):
        doc.insert((9, "nobody"), "x")
    with pytest.raises(KeyError):
        doc.delete((9, "nobody"))
    with pytest.raises(ValueError):
        doc.insert("not an id", "x")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        doc.insert(None, {1, 2})
    with pytest.raises(TypeError):
        doc.merge(LWWMap())  # type: ignore[arg-type]
    x = doc.insert(None, "x")
    doc.delete(list(x))  # type: ignore[arg-type]  # the JSON form of an id
    version = doc.version()
    doc.delete(x)
    assert doc.version() == version
    assert doc.to_list() == []


def test_values_are_copied_out() -> None:
    doc = RGA()
    doc.insert(None, {"k": [1]})
    doc.to_list()[0]["k"].append(2)
    assert doc.to_list() == [{"k": [1]}]


def test_generated_replica_ids_are_unique() -> None:
    assert len({RGA().replica_id for _ in range(100)}) == 100


def test_a_long_sequential_document() -> None:
    doc = RGA("typist")
    last = None
    for n in range(5_000):
        last = doc.insert(last, n)
    assert doc.to_list() == list(range(5_000))
    assert RGA.from_bytes(doc.to_bytes()) == doc


def test_malformed_bytes_are_refused() -> None:
    doc = RGA("a")
    first = doc.insert(None, "x")
    doc.insert(first, "y")
    good = doc.to_bytes()
    assert RGA.from_bytes(good) == doc
    anchored_to_the_future = good.replace(b"\x94\x01\xa1a\xc0", b"\x94\x01\xa1a\x92\x05\xa1a")
    for data in (b"", good[:-2], anchored_to_the_future, LWWMap().to_bytes(), b"\x95\x01\xa3rga\x80\x80\x92"):
        with pytest.raises(ValueError):
            RGA.from_bytes(data)


@SETTINGS
@given(st.lists(st.tuples(st.booleans(), st.integers(0, 1_000), st.integers(0, 99)), max_size=60))
def test_single_replica_behaves_like_a_list(edits: list[tuple[bool, int, int]]) -> None:
    doc, model = RGA("solo"), []
    for is_insert, where, value in edits:
        ids = doc.ids()
        if is_insert:
            index = where % (len(model) + 1)
            doc.insert(ids[index - 1] if index else None, value)
            model.insert(index, value)
        elif model:
            index = where % len(model)
            doc.delete(ids[index])
            del model[index]
        assert doc.to_list() == model


@SETTINGS
@given(histories)
def test_merge_is_commutative(history: list[tuple]) -> None:
    a, b, _ = run(history).replicas
    ab, ba = clone(a), clone(b)
    ab.merge(b)
    ba.merge(a)
    assert ab == ba
    assert ab.to_bytes() == ba.to_bytes()
    assert ab.to_list() == ba.to_list()


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
    assert left.to_list() == a_right.to_list()


@SETTINGS
@given(histories)
def test_merge_is_idempotent(history: list[tuple]) -> None:
    a, b, _ = run(history).replicas
    twice = clone(a)
    twice.merge(a)
    twice.merge(twice)
    assert twice == a
    assert twice.to_list() == a.to_list()
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
    for _ in range(2):
        receiver = RGA()
        for message in data.draw(st.permutations(messages + duplicates)):
            receiver.merge(RGA.from_bytes(message))
        assert receiver == everything
        assert receiver.to_list() == everything.to_list()
        assert receiver.version() == everything.version()


@SETTINGS
@given(histories)
def test_delta_merge_equals_full_merge(history: list[tuple]) -> None:
    a, b, _ = run(history).replicas
    via_delta, via_full = clone(a), clone(a)
    via_delta.merge(RGA.from_bytes(b.delta_since(a.version()).to_bytes()))
    via_full.merge(b)
    assert via_delta == via_full
    assert via_delta.to_list() == via_full.to_list()
    assert via_delta.version() == via_full.version()
    assert b.delta_since(b.version()).to_list() == []


@SETTINGS
@given(histories)
def test_bytes_round_trip(history: list[tuple]) -> None:
    for state in run(history).replicas:
        again = RGA.from_bytes(state.to_bytes())
        assert again == state
        assert again.to_bytes() == state.to_bytes()
        assert again.to_list() == state.to_list()
        assert again.ids() == state.ids()


@SETTINGS
@given(histories)
def test_a_replica_keeps_inserting_after_a_round_trip_without_id_clashes(history: list[tuple]) -> None:
    for state in run(history).replicas:
        restored = RGA.from_bytes(state.to_bytes(), replica_id=state.replica_id)
        new_id = restored.insert(None, "new")
        assert new_id not in state.ids()
        assert new_id[0] > max((counter for counter, _ in state.ids()), default=0)


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
        decoded = RGA.from_bytes(bytes(raw))
    except ValueError:
        return  # the usual outcome
    assert RGA.from_bytes(decoded.to_bytes()) == decoded
    decoded.to_list()
    target = clone(original)
    try:
        target.merge(decoded)
    except TypeError:
        assert target == original  # refused before anything changed
    else:
        assert target.version().dominates(original.version())


def _sync_all(replicas: list[RGA]) -> None:
    for _sweep in range(2):
        for a in replicas:
            for b in replicas:
                if a is not b:
                    b.merge(RGA.from_bytes(a.delta_since(b.version()).to_bytes()))


@pytest.mark.parametrize("seed", range(6))
def test_collected_tombstones_leave_every_replica_in_the_order_of_one_that_kept_them(seed: int) -> None:
    """Busy lists (appends, inserts anywhere, deletes) shrink when their tombstones are collected at a
    version every replica reached, and keep the order a replica that never collects shows."""
    rng = random.Random(seed)
    replicas = [RGA(f"r{i}") for i in range(3)]
    keeper = RGA("keeper")  # never collects
    collected = 0
    for _cycle in range(30):
        for _op in range(rng.randrange(1, 12)):
            r = rng.choice(replicas)
            ids = r.ids()
            if ids and rng.random() < 0.45:
                r.delete(rng.choice(ids))
            else:
                anchor = rng.choice([None, *ids]) if rng.random() < 0.5 else (ids[-1] if ids else None)
                r.insert(anchor, rng.randrange(1000))
            if rng.random() < 0.3:
                a, b = rng.sample(replicas, 2)
                b.merge(RGA.from_bytes(a.delta_since(b.version()).to_bytes()))
        _sync_all([*replicas, keeper])
        stable = replicas[0].version()
        for r in replicas:
            if rng.random() < 0.7:  # not every replica collects at the same time
                collected += r.collect(stable)
    _sync_all([*replicas, keeper])
    expected = keeper.to_list()
    assert all(r.to_list() == expected for r in replicas)
    late = RGA("late")
    late.merge(RGA.from_bytes(replicas[0].to_bytes()))
    assert late.to_list() == expected
    assert collected > 0 and len(replicas[0]._nodes) < len(keeper._nodes)


def test_a_queue_keeps_only_its_live_elements_once_collected() -> None:
    a, b = RGA("a"), RGA("b")
    tail = None
    for i in range(200):
        tail = a.insert(a.ids()[-1] if a.ids() else None, i)
        b.merge(a.delta_since(b.version()))
        if i >= 3:
            b.delete(b.ids()[0])
            a.merge(b.delta_since(a.version()))
        if i % 10 == 9:
            stable = a.version()
            assert b.version() == stable
            a.collect(stable)
            b.collect(stable)
    assert a.to_list() == b.to_list() == [197, 198, 199] and tail == a.ids()[-1]
    assert len(a._nodes) <= 14 and len(b._nodes) <= 14
    assert RGA.from_bytes(a.to_bytes()).to_list() == a.to_list()
