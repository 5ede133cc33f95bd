"""Token buckets and trust-weighted limits, on an injected clock."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from f0mesh.trust import RateLimiter, RateParams, TokenBucket, rate_for_trust


class FakeClock:
    def __init__(self) -> None:
        self.now = 50.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def test_burst_then_refill_at_rate(clock: FakeClock) -> None:
    bucket = TokenBucket(rate=2.0, burst=10.0, clock=clock)
    assert sum(bucket.try_take() for _ in range(15)) == 10
    assert not bucket.try_take()
    clock.now += 0.4
    assert not bucket.try_take()  # 0.8 tokens
    clock.now += 0.1
    assert bucket.try_take()  # 1.0 token
    clock.now += 2.5
    assert sum(bucket.try_take() for _ in range(10)) == 5
    clock.now += 3600.0
    assert bucket.tokens == 10.0  # never above the burst
    assert not bucket.try_take(11)
    assert bucket.try_take(10)


def test_set_limits_keeps_earned_tokens_but_not_above_the_new_burst(clock: FakeClock) -> None:
    bucket = TokenBucket(rate=1.0, burst=100.0, clock=clock)
    bucket.try_take(90)
    bucket.set_limits(rate=10.0, burst=200.0)
    assert bucket.tokens == 10.0  # more trust does not hand out a fresh burst
    clock.now += 1.0
    assert bucket.tokens == 20.0
    bucket.set_limits(rate=1.0, burst=5.0)
    assert bucket.tokens == 5.0


def test_a_clock_stepping_back_grants_nothing(clock: FakeClock) -> None:
    bucket = TokenBucket(rate=100.0, burst=3.0, clock=clock)
    bucket.try_take(3)
    clock.now -= 10.0
    assert bucket.tokens == 0.0
    clock.now += 0.01
    assert bucket.tokens == pytest.approx(1.0)


@pytest.mark.parametrize(("rate", "burst"), [(-1.0, 5.0), (1.0, 0.0), (math.nan, 5.0), (1.0, math.inf)])
def test_bad_limits_are_refused(clock: FakeClock, rate: float, burst: float) -> None:
    with pytest.raises(ValueError):
        TokenBucket(rate, burst, clock)


def test_rate_for_trust_formula() -> None:
    params = RateParams(base_rate=10, min_rate=1, max_rate=200, base_burst=100, min_burst=50, max_burst=1000)
    assert rate_for_trust(0.1, 10, params) == (10.0, 100.0)  # uniform share
    assert rate_for_trust(0.3, 10, params) == pytest.approx((30.0, 300.0))
    assert rate_for_trust(0.0, 10, params) == (1.0, 50.0)  # untrusted: the floors
    assert rate_for_trust(1.0, 1000, params) == (200.0, 1000.0)  # capped
    assert rate_for_trust(-0.5, 10, params) == (1.0, 50.0)
    assert rate_for_trust(math.nan, 10, params) == (1.0, 50.0)
    with pytest.raises(ValueError):
        rate_for_trust(0.1, 0, params)


def test_untrusted_peer_gets_a_burst_of_at_least_50_by_default() -> None:
    assert RateParams().min_burst == 50
    rate, burst = rate_for_trust(0.0, 500)
    assert burst >= 50 and rate > 0


@settings(max_examples=200, deadline=None)
@given(
    low=st.floats(min_value=0.0, max_value=1.0),
    high=st.floats(min_value=0.0, max_value=1.0),
    n=st.integers(min_value=1, max_value=10_000),
)
def test_more_trust_never_means_a_lower_limit(low: float, high: float, n: int) -> None:
    low, high = sorted((low, high))
    r_low, b_low = rate_for_trust(low, n)
    r_high, b_high = rate_for_trust(high, n)
    assert r_high >= r_low and b_high >= b_low
    assert b_low >= 50


def test_limiter_gives_trusted_peers_more(clock: FakeClock) -> None:
    limiter = RateLimiter(RateParams(), clock, scores={"trusted": 0.5, "meh": 0.25, "other": 0.25})
    allowed = {peer: sum(limiter.allow(peer) for _ in range(2000)) for peer in ("trusted", "meh", "stranger")}
    assert allowed == {"trusted": 150, "meh": 75, "stranger": 50}
    assert limiter.limits("trusted")[0] > limiter.limits("meh")[0] > limiter.limits("stranger")[0]
    clock.now += 1.0
    refilled = {
        peer: sum(limiter.allow(peer) for _ in range(2000)) for peer in ("trusted", "meh", "stranger")
    }
    assert refilled == {"trusted": 15, "meh": 7, "stranger": 1}


def test_limiter_updates_existing_buckets_when_scores_change(clock: FakeClock) -> None:
    limiter = RateLimiter(RateParams(), clock, scores={"a": 0.5, "b": 0.5})
    assert limiter.allow("a", 100)
    limiter.set_scores({"a": 0.1, "b": 0.9})
    assert limiter.limits("a") == pytest.approx((2.0, 50.0))
    clock.now += 1000.0
    assert limiter.allow("a", 50)
    assert not limiter.allow("a", 1)


def test_limiter_is_bounded_by_lru(clock: FakeClock) -> None:
    limiter = RateLimiter(RateParams(max_buckets=3), clock)
    for peer in ("a", "b", "c"):
        assert limiter.allow(peer, 50)
    assert limiter.allow("a", 0)  # a becomes most recently used
    assert limiter.allow("d")
    assert len(limiter) == 3
    assert "b" not in limiter and {"a", "c", "d"} == {p for p in "abcd" if p in limiter}
    assert not limiter.allow("a")  # a kept its empty bucket
    limiter.forget("a")
    assert limiter.allow("a")


def test_a_flood_of_fresh_ids_evicts_the_least_trusted_not_the_trusted(clock: FakeClock) -> None:
    """#20: per-origin state is capped and evicts the least trusted first: a trusted origin that
    spent its burst keeps its (empty) bucket while invented ids push each other out."""
    limiter = RateLimiter(RateParams(max_buckets=8, min_burst=50.0), clock, scores={"trusted": 0.01})
    while limiter.allow("trusted"):
        pass
    for n in range(200):
        limiter.allow(f"invented-{n}")
    assert "trusted" in limiter and len(limiter) == 8
    assert not limiter.allow("trusted")  # no fresh burst handed back
