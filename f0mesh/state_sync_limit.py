"""A rate limit on ctl ``state`` frames per neighbour (#20): state sync is cheap to ask for and
dear to answer.

Each ``versions`` frame makes this node compare every document and send the deltas the asker lacks,
and each ``delta`` frame is reassembled and merged (signatures checked op by op), so a neighbour
repeating either could keep a core busy. Honest sync sends one ``versions`` per link open or merge
burst and a document's deltas in chunks; the buckets below sit well above that. What is over the
limit is dropped with an audit row (one per neighbour and interval, through ``audit``); the
neighbour is not penalised, and the next anti-entropy round repairs what an honest frame carried.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from f0mesh.ctl import Handler
from f0mesh.trust import RateLimiter, RateParams

VERSIONS_RATE, VERSIONS_BURST = 1.0, 20.0  # per neighbour: per second, at once
DELTA_RATE, DELTA_BURST = 200.0, 2000.0
MAX_NEIGHBOURS = 1024  # buckets kept; only linked peers send ctl frames


def _flat(rate: float, burst: float) -> RateParams:
    return RateParams(
        base_rate=0.0,
        min_rate=rate,
        max_rate=rate,
        base_burst=0.0,
        min_burst=burst,
        max_burst=burst,
        max_buckets=MAX_NEIGHBOURS,
    )


class StateSyncLimit:
    def __init__(
        self,
        handler: Handler,
        audit: Callable[[str, str, str], None],
        *,
        versions: tuple[float, float] = (VERSIONS_RATE, VERSIONS_BURST),
        deltas: tuple[float, float] = (DELTA_RATE, DELTA_BURST),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._handler = handler
        self._audit = audit
        self._limits = {
            "versions": RateLimiter(_flat(*versions), clock),
            "delta": RateLimiter(_flat(*deltas), clock),
        }
        self.dropped: Counter[str] = Counter()

    async def __call__(self, peer_id: str, message: dict[str, Any]) -> None:
        op = message.get("op")
        limiter = self._limits.get(op) if isinstance(op, str) else None
        if limiter is not None and not limiter.allow(peer_id):
            self.dropped[op] += 1
            self._audit(peer_id, "state_rate_limited", f"more {op} frames than the limit")
            return
        result = self._handler(peer_id, message)
        if result is not None:
            await result
