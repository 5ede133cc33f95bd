"""Bounded, time-limited set of message ids already accepted (GossipSub's seen-cache).

Both bounds matter: the TTL lets memory follow the replay window (older envelopes are refused
as replays anyway), and the size cap keeps a flood of distinct valid ids from exhausting memory.
"""

from __future__ import annotations

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

    def add(self, message_id: str, at: float | None = None) -> bool:
        """Record an id; False if it was already present (a duplicate).

        ``at`` backdates the entry (seeding from the store after a restart) so it expires on time.
        """
        now = self._clock()
        self._expire(now)
        if message_id in self._expiry:
            return False
        self._expiry[message_id] = (now if at is None else min(at, now)) + self._ttl
        while len(self._expiry) > self._max:
            self._expiry.popitem(last=False)
        return True

    def __contains__(self, message_id: object) -> bool:
        expiry = self._expiry.get(message_id)  # type: ignore[call-overload]
        return expiry is not None and expiry > self._clock()

    def __len__(self) -> int:
        self._expire(self._clock())
        return len(self._expiry)

    def _expire(self, now: float) -> None:
        # entries are appended in (nearly) expiry order, so the stale ones sit at the front
        while self._expiry:
            first, expiry = next(iter(self._expiry.items()))
            if expiry > now:
                break
            del self._expiry[first]

    def discard(self, message_id: str) -> None:
        """Forget an id, e.g. when storing the message failed and a later copy must be accepted."""
        self._expiry.pop(message_id, None)
