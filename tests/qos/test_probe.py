import math
import tracemalloc

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from f0mesh.qos.probe import (
    MAX_PROBE_BYTES,
    ProbeError,
    ProbeOutcome,
    ProbeSender,
    answer_ping,
    decode_probe,
    encode_probe,
)


def test_pings_are_numbered_and_stamped(clock) -> None:
    s = ProbeSender(clock)
    p0 = s.ping()
    clock.advance(0.25)
    p1 = s.ping()
    assert (p0["seq"], p1["seq"]) == (0, 1)
    assert p0["t_send"] == 1_000_000.0 and p1["t_send"] == 1_000_250.0
    assert s.outstanding == 2 and s.loss.sent == 2


def test_answer_uses_responder_clock(clock) -> None:
    pong = answer_ping({"seq": 7, "t_send": 12.5}, lambda: 3.0)
    assert pong == {"seq": 7, "t_send": 12.5, "t_recv_peer": 3000.0}
    with pytest.raises(ProbeError):
        answer_ping({"t_send": 1.0}, clock)


def test_rtt_and_jitter_from_pongs(clock) -> None:
    peer_offset = -900.0  # the responder's clock is 900 s behind; only jitter sees it, and cancels it
    s = ProbeSender(clock)
    for one_way_ms in (10.0, 30.0):
        ping = s.ping()
        clock.advance(one_way_ms / 1000)
        pong = answer_ping(ping, lambda: clock.now + peer_offset)
        clock.advance(0.010)
        assert s.on_pong(pong) is ProbeOutcome.ANSWERED
        clock.advance(1.0)
    assert s.rtt.median() == pytest.approx(30.0)  # samples 20 and 40 ms
    # D = (30 - 10) ms between the two probes' transit times -> J = 20/16
    assert s.jitter.value == pytest.approx(20 / 16)


def test_reordered_answers_all_count(clock) -> None:
    s = ProbeSender(clock)
    pings = [s.ping() for _ in range(3)]
    clock.advance(0.05)
    for i in (2, 0, 1):
        assert s.on_pong(answer_ping(pings[i], clock)) is ProbeOutcome.ANSWERED
    assert (s.loss.answered, s.loss.lost, s.outstanding) == (3, 0, 0)


def test_duplicates_are_ignored(clock) -> None:
    s = ProbeSender(clock)
    ping = s.ping()
    clock.advance(0.04)
    pong = answer_ping(ping, clock)
    assert s.on_pong(pong) is ProbeOutcome.ANSWERED
    clock.advance(0.5)
    assert s.on_pong(pong) is ProbeOutcome.DUPLICATE
    assert s.rtt.count == 1 and s.rtt.median() == pytest.approx(40.0)
    assert s.loss.answered == 1


def test_late_answer_counts_lost_once_and_stays_lost(clock) -> None:
    s = ProbeSender(clock, timeout_s=2.0)
    ping = s.ping()
    pong = answer_ping(ping, clock)
    clock.advance(2.5)
    assert s.on_pong(pong) is ProbeOutcome.LATE
    assert s.on_pong(pong) is ProbeOutcome.LATE
    assert s.expire() == 0
    assert (s.loss.lost, s.loss.answered, s.rtt.count) == (1, 0, 0)
    assert s.loss.loss_pct == 100.0


def test_remembered_losses_are_the_latest_and_cost_bytes_not_objects(clock) -> None:
    """A lossy link keeps its sender for life: the losses it remembers must not grow to a heap of
    Python ints (with an OrderedDict, 3000 lost probes left ~171 KiB; now ~11 KiB)."""
    kept = {}
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        s = ProbeSender(clock, timeout_s=1.0, remember_lost=1024)
        for i in range(3000):  # every probe lost, one a second, in order
            ping = s.ping()
            if i in (3000 - 1025, 3000 - 1024, 2999):
                kept[i] = ping
            clock.advance(1.0)
            s.expire()
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert s.loss.lost == 3000
    assert held < 24 * 1024, held  # ~8 KiB of seqs
    assert s.on_pong(answer_ping(kept[2999], clock)) is ProbeOutcome.LATE
    assert s.on_pong(answer_ping(kept[3000 - 1024], clock)) is ProbeOutcome.LATE  # oldest remembered
    assert s.on_pong(answer_ping(kept[3000 - 1025], clock)) is ProbeOutcome.DUPLICATE  # forgotten
    assert (s.loss.lost, s.loss.answered) == (3000, 0)


def test_timeout_boundary_and_configurable_timeout(clock) -> None:
    s = ProbeSender(clock, timeout_s=0.5)
    a, b = s.ping(), s.ping()
    clock.advance(0.499)
    assert s.expire() == 0
    assert s.on_pong(answer_ping(a, clock)) is ProbeOutcome.ANSWERED
    clock.advance(0.001)  # b is now exactly timeout_s old: lost
    assert s.on_pong(answer_ping(b, clock)) is ProbeOutcome.LATE
    assert (s.loss.answered, s.loss.lost) == (1, 1)
    with pytest.raises(ValueError):
        ProbeSender(clock, timeout_s=0)


def test_loss_with_reordering_duplicates_and_late_answers(clock) -> None:
    s = ProbeSender(clock, timeout_s=2.0)
    pings = []
    for _ in range(10):
        pings.append(s.ping())
        clock.advance(0.1)
    # t = 1.0 s: answers for 9, 3, 5, 3 (dup), 0; probes 1, 2, 4, 6, 7, 8 are pending
    outcomes = [s.on_pong(answer_ping(pings[i], clock)) for i in (9, 3, 5, 3, 0)]
    assert outcomes.count(ProbeOutcome.ANSWERED) == 4 and outcomes[3] is ProbeOutcome.DUPLICATE
    clock.advance(1.85)  # t = 2.85 s: every pending probe (sent at 0.1..0.8 s) is over 2 s old
    assert s.expire() == 6
    late = [s.on_pong(answer_ping(pings[i], clock)) for i in (1, 8)]
    assert late == [ProbeOutcome.LATE, ProbeOutcome.LATE]
    assert (s.loss.sent, s.loss.answered, s.loss.lost) == (10, 4, 6)
    assert s.loss.loss_pct == pytest.approx(60.0)


def test_unknown_and_forged_pongs_do_not_count(clock) -> None:
    s = ProbeSender(clock)
    ping = s.ping()
    assert s.on_pong({"seq": 42, "t_send": 1.0, "t_recv_peer": 2.0}) is ProbeOutcome.UNKNOWN
    assert s.on_pong({**ping, "t_send": ping["t_send"] + 1, "t_recv_peer": 0.0}) is ProbeOutcome.UNKNOWN
    assert s.outstanding == 1
    assert s.on_pong(answer_ping(ping, clock)) is ProbeOutcome.ANSWERED
    with pytest.raises(ProbeError):
        s.on_pong({"seq": 0, "t_send": ping["t_send"]})
    with pytest.raises(ProbeError):
        s.on_pong({"seq": True, "t_send": 1.0, "t_recv_peer": 1.0})


def test_outstanding_is_bounded(clock) -> None:
    s = ProbeSender(clock, max_outstanding=4)
    for _ in range(10):
        s.ping()
    assert s.outstanding == 4 and s.loss.lost == 6


def test_codec_roundtrip_and_size() -> None:
    ping = {"seq": 123456, "t_send": 98765432.125}
    pong = {**ping, "t_recv_peer": 1.5}
    assert decode_probe(encode_probe(ping)) == ping
    assert decode_probe(encode_probe(pong)) == pong
    assert len(encode_probe(ping)) <= 16 and len(encode_probe(pong)) <= 32


@given(
    seq=st.integers(min_value=0, max_value=2**64 - 1),
    t_send=st.floats(allow_nan=False, allow_infinity=False),
    t_recv=st.floats(allow_nan=False, allow_infinity=False),
)
def test_codec_roundtrip_any(seq: int, t_send: float, t_recv: float) -> None:
    pong = {"seq": seq, "t_send": t_send, "t_recv_peer": t_recv}
    assert decode_probe(encode_probe(pong)) == pong


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\xc1",
        msgpack.packb({"seq": 1, "t_send": 2.0}),
        msgpack.packb([]),
        msgpack.packb([0, 1]),
        msgpack.packb([2, 1, 2.0]),
        msgpack.packb([0, -1, 2.0]),
        msgpack.packb([0, 1, "2.0"]),
        msgpack.packb([0, 1, math.nan]),
        msgpack.packb([1, 1, 2.0, math.inf]),
        msgpack.packb([0, 1, 2.0]) + b"\x00",
        b"\x90" * (MAX_PROBE_BYTES + 1),
    ],
)
def test_decode_rejects_garbage(data: bytes) -> None:
    with pytest.raises(ProbeError):
        decode_probe(data)


@given(st.binary(max_size=80))
def test_decode_returns_a_probe_or_raises_probe_error(data: bytes) -> None:
    try:
        msg = decode_probe(data)
    except ProbeError:
        return
    assert decode_probe(encode_probe(msg)) == msg
