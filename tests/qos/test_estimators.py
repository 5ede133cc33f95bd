from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from f0mesh.qos.estimators import (
    BitrateMeter,
    JitterEstimator,
    LossEstimator,
    RttEstimator,
    percentile_nearest_rank,
)

# Send times every 20 ms; the peer's receive times carry a 100 ms clock offset plus variable delay.
SEND = [0.0, 20.0, 40.0, 60.0, 80.0]
RECV = [100.0, 125.0, 138.0, 165.0, 180.0]
# By hand: D = 5, -7, 7, -5 ms; J1 = 5/16, J2 = J1*15/16 + 7/16 = 187/256,
# J3 = 187/256*15/16 + 7/16 = 4597/4096, J4 = 4597/4096*15/16 + 5/16 = 89435/65536.
EXPECTED_J = [None, Fraction(5, 16), Fraction(187, 256), Fraction(4597, 4096), Fraction(89435, 65536)]


def test_rfc3550_jitter_on_hand_computed_series() -> None:
    j = JitterEstimator()
    for s, r, expected in zip(SEND, RECV, EXPECTED_J, strict=True):
        j.add(s, r)
        if expected is None:
            assert j.value is None
        else:
            assert j.value == pytest.approx(float(expected), abs=1e-12)


def test_jitter_zero_for_constant_transit_and_reset() -> None:
    j = JitterEstimator()
    for i in range(10):
        j.add(i * 20.0, 5000.0 + i * 20.0)
    assert j.value == 0.0
    j.reset()
    assert j.value is None


@given(
    offset=st.integers(min_value=-(10**9), max_value=10**9),
    delays=st.lists(st.integers(min_value=0, max_value=1000), min_size=2, max_size=30),
)
def test_jitter_ignores_clock_offset(offset: int, delays: list[int]) -> None:
    a, b = JitterEstimator(), JitterEstimator()
    for i, d in enumerate(delays):
        a.add(i * 20.0, i * 20.0 + d)
        b.add(i * 20.0, i * 20.0 + d + offset)
    assert a.value == pytest.approx(b.value, rel=1e-9, abs=1e-6)


def test_rtt_median_p95_srtt_on_known_series() -> None:
    r = RttEstimator()
    assert r.median() is None and r.p95() is None and r.srtt is None
    r.add(100.0)
    assert (r.srtt, r.rttvar) == (100.0, 50.0)
    r.add(200.0)
    # RFC 6298: RTTVAR = 3/4*50 + 1/4*|100-200| = 62.5; SRTT = 7/8*100 + 1/8*200 = 112.5
    assert (r.srtt, r.rttvar) == (112.5, 62.5)
    r.add(100.0)
    # RTTVAR = 3/4*62.5 + 1/4*12.5 = 50; SRTT = 7/8*112.5 + 1/8*100 = 110.9375
    assert (r.srtt, r.rttvar) == (110.9375, 50.0)
    for v in (10.0, 30.0):
        r.add(v)
    # window: 100, 200, 100, 10, 30 -> sorted 10, 30, 100, 100, 200
    assert r.median() == 100.0
    assert r.p95() == 200.0
    r.reset_window()
    assert r.median() is None and r.count == 0
    assert r.srtt is not None  # smoothed state survives the window


def test_median_of_even_count_and_p95_nearest_rank() -> None:
    r = RttEstimator()
    for v in range(20, 0, -1):
        r.add(float(v))
    assert r.median() == 10.5
    assert r.p95() == 19.0  # rank ceil(0.95*20) = 19
    assert percentile_nearest_rank([5.0], 95) == 5.0
    assert percentile_nearest_rank([1.0, 2.0, 3.0, 4.0], 50) == 2.0
    with pytest.raises(ValueError):
        percentile_nearest_rank([], 95)


def test_rtt_rejects_nonsense() -> None:
    r = RttEstimator()
    for bad in (-1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError):
            r.add(bad)


def test_loss_ratio_over_decided_probes() -> None:
    loss = LossEstimator()
    assert loss.loss_pct is None
    for _ in range(10):
        loss.on_sent()
    for _ in range(7):
        loss.on_answered()
    loss.on_lost()
    assert loss.loss_pct == pytest.approx(12.5)  # 1 of 8 decided; 2 still pending
    loss.reset_window()
    assert (loss.sent, loss.answered, loss.lost, loss.loss_pct) == (0, 0, 0, None)


def test_bitrate_over_window_both_directions() -> None:
    m = BitrateMeter()
    assert m.rates_kbps() is None
    m.add(0, 0, 10.0)
    assert m.rates_kbps() is None  # one sample spans no time
    m.add(12_500, 2_500, 11.0)
    m.add(25_000, 5_000, 12.0)
    assert m.rates_kbps() == pytest.approx((100.0, 20.0))  # 25 kB*8/2 s, 5 kB*8/2 s
    m.reset_window()
    assert m.rates_kbps() is None
    m.add(37_500, 5_000, 13.0)
    assert m.rates_kbps() == pytest.approx((100.0, 0.0))  # baseline is the previous window's last sample


def test_bitrate_counter_restart_and_time_order() -> None:
    m = BitrateMeter()
    m.add(1_000_000, 1_000_000, 0.0)
    m.add(1_000, 2_000, 1.0)  # a new transport restarted its counters
    assert m.rates_kbps() == pytest.approx((8.0, 16.0))
    with pytest.raises(ValueError):
        m.add(2_000, 3_000, 0.5)
    with pytest.raises(ValueError):
        m.add(-1, 0, 2.0)
