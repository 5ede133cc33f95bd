"""Counters and clocks from a peer cannot make this replica's own clock or counters unusable (issue 18)."""

from __future__ import annotations

import pytest

from f0mesh.crdt import HLC, RGA, HLCTimestamp, LWWElementSet, LWWMap
from f0mesh.crdt.codec import pack, pack_value
from f0mesh.crdt.hlc import MAX_LOGICAL
from f0mesh.crdt.replicated import FORMAT

TOP = 2**64 - 1  # the encoder's top; c5738a4 accepted it as a seq
NOW = 1_800_000_000_000


def forged_map(
    origin: str, seq: int, spans: list[int] | None = None, ts: HLCTimestamp | None = None
) -> bytes:
    """A map delta with one record under `origin` at `seq`, built as a hostile peer would, byte by byte."""
    ts = ts or HLCTimestamp(NOW, 0, origin)
    record = [ts, True, pack_value("forged"), origin, seq]
    return pack([FORMAT, "lww-map", {origin: spans or [0, seq]}, {}, [["k", record]]])


def test_a_logical_counter_near_the_format_limit_is_refused_and_the_clock_keeps_working() -> None:
    clock = HLC("me", clock=lambda: NOW)
    hostile = HLCTimestamp(NOW + 55_000, MAX_LOGICAL - 1, "x")
    with pytest.raises(ValueError):
        clock.update(hostile)
    stamps = [clock.now() for _ in range(3)]
    assert stamps == sorted(stamps) and stamps[0].wall_ms == NOW


def test_at_the_logical_bound_the_clock_moves_its_wall_time_on_instead_of_overflowing() -> None:
    from f0mesh.crdt.bounds import LOGICAL_BOUND

    clock = HLC("me", clock=lambda: NOW)
    adopted = clock.update(HLCTimestamp(NOW + 55_000, LOGICAL_BOUND, "x"))
    stamps = [clock.now() for _ in range(5)]
    assert adopted < stamps[0] and stamps == sorted(stamps)
    assert all(s.logical <= LOGICAL_BOUND for s in [adopted, *stamps])
    assert stamps[-1].wall_ms == NOW + 55_001  # moved on by 1 ms, not 55 s of a stopped clock


def test_state_bytes_with_a_huge_logical_counter_do_not_decode() -> None:
    data = forged_map("peer", 1, ts=HLCTimestamp(NOW, MAX_LOGICAL - 1, "peer"))
    with pytest.raises(ValueError, match="logical"):
        LWWMap.from_bytes(data)


@pytest.mark.parametrize("seq", [TOP, 2**48 + 1])
def test_a_seq_above_the_bound_does_not_decode(seq: int) -> None:
    with pytest.raises(ValueError, match="seq"):
        LWWMap.from_bytes(forged_map("victim", seq))
    with pytest.raises(ValueError, match="seq"):  # spans alone, no record
        LWWMap.from_bytes(pack([FORMAT, "lww-map", {"victim": [0, seq]}, {}, []]))
    with pytest.raises(ValueError):
        RGA.from_bytes(pack([FORMAT, "rga", {"x": [0, seq]}, {}, [[[seq, "x", None, pack_value(1)]], []]]))


def test_own_ops_pushed_to_the_top_of_the_range_are_refused_and_the_next_own_write_works() -> None:
    victim = LWWMap("victim")
    victim.set("a", 1, HLCTimestamp(NOW, 0, "victim"))
    hostile = LWWMap.from_bytes(forged_map("victim", 2**48))
    with pytest.raises(ValueError, match="own id"):
        victim.admit(hostile)
    victim.set("b", 2, HLCTimestamp(NOW + 1, 0, "victim"))
    assert LWWMap.from_bytes(victim.to_bytes(), "victim") == victim
    assert victim.version().get("victim") == 2


def test_own_ops_a_little_ahead_are_adopted_and_the_next_write_goes_on_after_them() -> None:
    """What an honest peer holds after this node lost its last writes in a crash."""
    victim = LWWMap("victim")
    victim.set("a", 1, HLCTimestamp(NOW, 0, "victim"))
    lost = LWWMap.from_bytes(forged_map("victim", 5, spans=[0, 5]))
    victim.admit(lost)
    victim.merge(lost)
    victim.set("b", 2, HLCTimestamp(NOW + 1, 0, "victim"))
    assert victim.version().get("victim") == 6


def test_spans_claimed_far_past_the_ops_a_delta_carries_are_clipped() -> None:
    from f0mesh.crdt.bounds import SEQ_SLACK

    receiver = LWWElementSet("me")
    claim = pack(
        [FORMAT, "lww-set", {"other": [0, 2**47]}, {}, [["e", [HLCTimestamp(NOW, 0, "o"), "other", 3], None]]]
    )
    delta = LWWElementSet.from_bytes(claim)
    receiver.admit(delta)
    receiver.merge(delta)
    assert receiver.version().get("other") == 3 + SEQ_SLACK
    assert "e" in receiver


def test_a_list_counter_cannot_be_pushed_out_of_reach_by_any_origin() -> None:
    from f0mesh.crdt.bounds import MAX_SEQ

    mine = RGA("me")
    mine.insert(None, "a")
    far = MAX_SEQ - 1
    hostile = RGA.from_bytes(
        pack([FORMAT, "rga", {"x": [0, far]}, {}, [[[far, "x", None, pack_value(1)]], []]])
    )
    with pytest.raises(ValueError, match="counter"):
        mine.admit(hostile)
    assert mine.insert(mine.ids()[-1], "b")[0] == 2
