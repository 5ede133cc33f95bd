"""Hybrid Logical Clock: monotonic under wall-clock steps, causal on receive, bounded by the skew limit."""

import dataclasses
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from f0mesh.crdt import HLC, ClockSkewError, HLCTimestamp
from f0mesh.errors import F0MeshError

SETTINGS = settings(max_examples=200, deadline=None)
SKEW = 1_000

timestamps = st.builds(
    HLCTimestamp,
    st.integers(0, 10**15 - 1),
    st.integers(0, 10**10 - 1),
    st.text(max_size=6),
)


class FakeClock:
    """A wall clock the test moves by hand, backwards included."""

    def __init__(self, ms: int = 1_000_000) -> None:
        self.ms = ms

    def __call__(self) -> int:
        return self.ms


def test_hand_example() -> None:
    clock = FakeClock(1_000)
    hlc = HLC("a", clock=clock)
    assert hlc.last is None
    assert hlc.now() == HLCTimestamp(1_000, 0, "a")
    assert hlc.now() == HLCTimestamp(1_000, 1, "a")
    clock.ms = 1_001
    assert hlc.now() == HLCTimestamp(1_001, 0, "a")
    clock.ms = 500  # NTP stepped the clock back
    assert hlc.now() == HLCTimestamp(1_001, 1, "a")
    assert hlc.update(HLCTimestamp(1_001, 5, "b")) == HLCTimestamp(1_001, 6, "a")
    clock.ms = 1_500
    assert hlc.update(HLCTimestamp(1_200, 9, "b")) == HLCTimestamp(1_500, 0, "a")
    assert hlc.update(HLCTimestamp(1_700, 3, "b")) == HLCTimestamp(1_700, 4, "a")
    assert hlc.last == HLCTimestamp(1_700, 4, "a")


@SETTINGS
@given(st.lists(st.integers(-5_000, 5_000), min_size=1, max_size=60))
def test_now_strictly_increases_even_when_the_wall_clock_steps_back(steps: list[int]) -> None:
    clock = FakeClock()
    hlc = HLC("n", clock=clock)
    previous = None
    for step in steps:
        clock.ms = max(0, clock.ms + step)
        stamp = hlc.now()
        assert previous is None or stamp > previous
        assert stamp.wall_ms >= clock.ms
        assert hlc.last == stamp
        previous = stamp


events = st.lists(
    st.one_of(
        st.tuples(st.just("now"), st.integers(-3_000, 3_000)),
        st.tuples(
            st.just("recv"),
            st.integers(-3_000, 3_000),
            st.integers(-5_000, SKEW + 2_000),
            st.integers(0, 20),
            st.sampled_from(["a", "z", "n"]),
        ),
    ),
    min_size=1,
    max_size=60,
)


@SETTINGS
@given(events)
def test_never_goes_backwards_and_respects_the_skew_bound(script: list[tuple]) -> None:
    clock = FakeClock()
    hlc = HLC("n", max_skew_ms=SKEW, clock=clock)
    highest_wall = clock.ms
    for event in script:
        clock.ms = max(0, clock.ms + event[1])
        highest_wall = max(highest_wall, clock.ms)
        before = hlc.last
        if event[0] == "now":
            stamp = hlc.now()
        else:
            _, _, offset, logical, node = event
            remote = HLCTimestamp(max(0, clock.ms + offset), logical, node)
            if remote.wall_ms - clock.ms > SKEW:
                with pytest.raises(ClockSkewError):
                    hlc.update(remote)
                assert hlc.last == before
                continue
            stamp = hlc.update(remote)
            assert stamp > remote
        assert before is None or stamp > before
        assert stamp.node == "n"
        # Only remote stamps within the bound were accepted, so the clock never runs further ahead than that.
        assert stamp.wall_ms <= highest_wall + SKEW


def test_skew_refusal_says_by_how_much_and_leaves_the_clock_alone() -> None:
    clock = FakeClock(10_000)
    hlc = HLC("n", max_skew_ms=5_000, clock=clock)
    first = hlc.now()
    with pytest.raises(ClockSkewError, match="7000 ms ahead") as caught:
        hlc.update(HLCTimestamp(17_000, 0, "far"))
    assert isinstance(caught.value, ValueError)
    assert isinstance(caught.value, F0MeshError)
    assert caught.value.ahead_ms == 7_000
    assert hlc.last == first
    assert hlc.now() == HLCTimestamp(10_000, 1, "n")
    with pytest.raises(ClockSkewError, match="5001 ms ahead"):
        hlc.update(HLCTimestamp(15_001, 0, "just-over"))
    assert hlc.update(HLCTimestamp(15_000, 2, "edge")) == HLCTimestamp(15_000, 3, "n")


@SETTINGS
@given(timestamps, timestamps)
def test_order_is_by_wall_then_logical_then_node_and_strings_sort_alike(
    a: HLCTimestamp, b: HLCTimestamp
) -> None:
    key_a, key_b = (a.wall_ms, a.logical, a.node), (b.wall_ms, b.logical, b.node)
    assert (a < b) == (key_a < key_b)
    assert (a == b) == (key_a == key_b)
    assert (a.to_str() < b.to_str()) == (a < b)


@SETTINGS
@given(timestamps)
def test_serialisation_round_trips(stamp: HLCTimestamp) -> None:
    assert HLCTimestamp.from_bytes(stamp.to_bytes()) == stamp
    assert HLCTimestamp.parse(stamp.to_str()) == stamp
    assert len(stamp.to_bytes()) <= 21 + len(stamp.node.encode())  # msgpack ints and str header


@pytest.mark.parametrize("text", ["", "1-2-x", "000000000000001-000000000x-n", "x" * 30])
def test_parse_rejects_malformed_strings(text: str) -> None:
    with pytest.raises(ValueError):
        HLCTimestamp.parse(text)


@pytest.mark.parametrize("data", [b"", b"\x93\x01", b"\x93\xa1x\x00\xa1n", b"\xc1", b"\x93\x01\x02\xa1n\x00"])
def test_from_bytes_rejects_malformed_bytes(data: bytes) -> None:
    with pytest.raises(ValueError):
        HLCTimestamp.from_bytes(data)


def test_fields_are_validated_and_immutable() -> None:
    with pytest.raises(ValueError):
        HLCTimestamp(-1, 0, "n")
    with pytest.raises(ValueError):
        HLCTimestamp(10**15, 0, "n")
    with pytest.raises(TypeError):
        HLCTimestamp(1, True, "n")
    stamp = HLCTimestamp(1, 2, "n")
    with pytest.raises(dataclasses.FrozenInstanceError):
        stamp.wall_ms = 5  # type: ignore[misc]
    assert {stamp, HLCTimestamp(1, 2, "n")} == {stamp}


def test_update_rejects_non_timestamps() -> None:
    with pytest.raises(TypeError):
        HLC("n").update((1, 2, "x"))  # type: ignore[arg-type]


def test_generated_node_ids_are_unique_and_the_system_clock_is_the_default() -> None:
    assert len({HLC().node_id for _ in range(200)}) == 200
    stamp = HLC("n").now()
    assert abs(stamp.wall_ms - time.time_ns() // 1_000_000) < 60_000
