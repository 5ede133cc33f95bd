"""Bounded, time-limited set of message ids already accepted (GossipSub's seen-cache).

Both bounds matter: the TTL lets memory follow the replay window (older envelopes are refused
as replays anyway), and the size cap keeps a flood of distinct valid ids from exhausting memory.
It sits on every envelope's path, so the front's expiry is kept at hand (no iterator per call) and
a caller that already read the clock for its batch passes ``now``.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable


class SeenCache:
    def __init__(self, max_entries: int, ttl_s: float, clock: Callable[[], float] = time.time) -> None:
        if max_entries < 1 or ttl_s <= 0:
            raise ValueError("seen-cache needs max_entries >= 1 and ttl_s > 0")
        self._max = max_entries
        self._ttl = ttl_s
        self._clock = clock
        self._expiry: OrderedDict[str, float] = OrderedDict()
        # no later than the front entry's expiry (earlier only after a discard or a cap eviction)
        self._next_expiry = math.inf

    def add(self, message_id: str, at: float | None = None, *, now: float | None = None) -> bool:
        """Record an id; False if it was already present (a duplicate).

        ``at`` backdates the entry (seeding from the store after a restart) so it expires on time.
        """
        if now is None:
            now = self._clock()
        if now >= self._next_expiry:
            self._expire(now)
        expiry = self._expiry
        if message_id in expiry:
            return False
        until = (now if at is None else min(at, now)) + self._ttl
        expiry[message_id] = until
        if until < self._next_expiry:
            self._next_expiry = until
        if len(expiry) > self._max:
            while len(expiry) > self._max:
                expiry.popitem(last=False)
            self._next_expiry = min(self._next_expiry, next(iter(expiry.values())))
        return True

    def __contains__(self, message_id: object) -> bool:
        return self.has(message_id, self._clock())

    def has(self, message_id: object, now: float) -> bool:
        """Whether the id is held and unexpired at ``now``."""
        expiry = self._expiry.get(message_id)  # type: ignore[call-overload]
        return expiry is not None and expiry > now

    def __len__(self) -> int:
        self._expire(self._clock())
        return len(self._expiry)

    def _expire(self, now: float) -> None:
        # entries are appended in (nearly) expiry order, so the stale ones sit at the front
        expiry = self._expiry
        while expiry:
            first, until = next(iter(expiry.items()))
            if until > now:
                self._next_expiry = until
                return
            del expiry[first]
        self._next_expiry = math.inf

    def discard(self, message_id: str) -> None:
        """Forget an id, e.g. when storing the message failed and a later copy must be accepted."""
        self._expiry.pop(message_id, None)
