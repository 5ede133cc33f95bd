"""Trust-weighted rate limits: token buckets whose rate and burst grow with the sender's trust.

Limiting per origin bounds what one identity can inject; limiting per neighbour bounds what one
link can relay. Both are a RateLimiter keyed by PeerId with their own RateParams. The per-origin
limiter should sit behind the per-neighbour one: origin ids are free to mint, and a flood of new
ids could otherwise push a throttled origin's bucket out of the LRU and hand it a fresh burst.
Past max_buckets the least trusted of the EVICTION_SAMPLE least recently used buckets goes, so a
flood of fresh ids (all at trust 0) evicts each other rather than the trusted origins' buckets.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from itertools import islice

from f0mesh.trust.score_params import RateParams

EVICTION_SAMPLE = 32


class TokenBucket:
    """Holds up to `burst` tokens, refilled at `rate` per second; starts full."""

    __slots__ = ("_clock", "_tokens", "_updated", "burst", "rate")

    def __init__(self, rate: float, burst: float, clock: Callable[[], float] = time.monotonic) -> None:
        _check_limits(rate, burst)
        self.rate = float(rate)
        self.burst = float(burst)
        self._clock = clock
        self._tokens = self.burst
        self._updated = clock()

    @property
    def tokens(self) -> float:
        self._refill()
        return self._tokens

    def try_take(self, n: float = 1.0) -> bool:
        """Take n tokens if available; a request larger than the burst can never succeed."""
        if not math.isfinite(n) or n < 0:
            raise ValueError(f"n must be finite and >= 0, got {n!r}")
        self._refill()
        if self._tokens < n:
            return False
        self._tokens -= n
        return True

    def set_limits(self, rate: float, burst: float) -> None:
        """Change the limits keeping the tokens earned so far (cut to a smaller burst)."""
        _check_limits(rate, burst)
        self._refill()
        self.rate = float(rate)
        self.burst = float(burst)
        self._tokens = min(self._tokens, self.burst)

    def _refill(self) -> None:
        now = self._clock()
        elapsed = now - self._updated
        if elapsed > 0:  # a clock that steps back grants nothing
            self._tokens = min(self.burst, self._tokens + elapsed * self.rate)
        self._updated = now


def _check_limits(rate: float, burst: float) -> None:
    if not (math.isfinite(rate) and rate >= 0):
        raise ValueError(f"rate must be finite and >= 0, got {rate!r}")
    if not (math.isfinite(burst) and burst > 0):
        raise ValueError(f"burst must be finite and > 0, got {burst!r}")


def rate_for_trust(trust_score: float, n_peers: int, params: RateParams | None = None) -> tuple[float, float]:
    """(rate per second, burst) for a sender with this global trust score.

    relative = trust_score * n_peers, so 1.0 is the uniform share 1/n_peers;
    rate = clamp(base_rate * relative, min_rate, max_rate);
    burst = clamp(base_burst * relative, min_burst, max_burst).
    A negative or non-finite score counts as 0 (the floors): the receive path must not fail on it.
    """
    params = params or RateParams()
    if n_peers < 1:
        raise ValueError(f"n_peers must be >= 1, got {n_peers!r}")
    relative = trust_score * n_peers if math.isfinite(trust_score) and trust_score > 0 else 0.0
    rate = min(params.max_rate, max(params.min_rate, params.base_rate * relative))
    burst = min(params.max_burst, max(params.min_burst, params.base_burst * relative))
    return rate, burst


class RateLimiter:
    """One token bucket per key (PeerId), sized by trust, at most params.max_buckets of them (LRU)."""

    def __init__(
        self,
        params: RateParams | None = None,
        clock: Callable[[], float] = time.monotonic,
        scores: Mapping[str, float] | None = None,
    ) -> None:
        self.params = params or RateParams()
        self._clock = clock
        self._buckets: OrderedDict[str, TokenBucket] = OrderedDict()
        self._scores: dict[str, float] = {}
        if scores is not None:
            self.set_scores(scores)

    def __len__(self) -> int:
        return len(self._buckets)

    def __contains__(self, key: object) -> bool:
        return key in self._buckets

    def limits(self, key: str) -> tuple[float, float]:
        """(rate, burst) the key gets under the current scores."""
        return rate_for_trust(self._scores.get(key, 0.0), max(1, len(self._scores)), self.params)

    def allow(self, key: str, n: float = 1.0) -> bool:
        """Whether the key may send n more messages now (and if so, charge them)."""
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = TokenBucket(*self.limits(key), clock=self._clock)
            while len(self._buckets) > self.params.max_buckets:
                self._evict()
        else:
            self._buckets.move_to_end(key)
        return bucket.try_take(n)

    def set_scores(self, scores: Mapping[str, float]) -> None:
        """Adopt new trust scores (call when ScoreCache.version moves) and resize existing buckets."""
        self._scores = dict(scores)
        for key, bucket in self._buckets.items():
            bucket.set_limits(*self.limits(key))

    def _evict(self) -> None:
        """The least trusted of the oldest few, never the newest (it would come back with a fresh burst)."""
        oldest = list(islice(self._buckets, min(EVICTION_SAMPLE, len(self._buckets) - 1)))
        del self._buckets[min(oldest, key=lambda k: self._scores.get(k, 0.0))]

    def forget(self, key: str) -> None:
        self._buckets.pop(key, None)
