"""Dial admission: a global token bucket and a per-address backoff for the dials the node makes by itself.

Peer exchange and the registry hand the node addresses it did not choose; without a gate, a burst of
learned peers became a burst of HTTP requests at whatever those addresses are. An operator's own dial
(API, CLI) does not pass through here.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from urllib.parse import urlsplit

MAX_ADDRESSES = 4096


def address_of(url: str) -> str:
    """Host and port: two paths or spellings of one server share its backoff."""
    try:
        parts = urlsplit(url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        return url
    return f"{(parts.hostname or '').lower()}:{port}"


class DialGate:
    def __init__(
        self,
        rate: float,
        burst: int,
        *,
        backoff_base_s: float = 2.0,
        backoff_max_s: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rate = rate
        self.burst = burst
        self.backoff_base_s = backoff_base_s
        self.backoff_max_s = backoff_max_s
        self._clock = clock
        self._tokens = float(burst)
        self._filled_at = clock()
        # address -> (failures in a row, not before); oldest first, capped
        self._backoff: OrderedDict[str, tuple[int, float]] = OrderedDict()
        self.admitted = 0
        self.refused = 0

    def wait(self, url: str, *, backoff: bool = True) -> float:
        """0 and a token spent if ``url`` may be dialled now, else the seconds until it may be.

        ``backoff=False``: a dial with a backoff of its own (the redial of a peer whose link was open)
        needs only a token."""
        now = self._clock()
        _, not_before = self._backoff.get(address_of(url), (0, 0.0)) if backoff else (0, 0.0)
        if not_before > now:
            self.refused += 1
            return not_before - now
        self._tokens = min(float(self.burst), self._tokens + (now - self._filled_at) * self.rate)
        self._filled_at = now
        if self._tokens < 1.0:
            self.refused += 1
            return (1.0 - self._tokens) / self.rate
        self._tokens -= 1.0
        self.admitted += 1
        return 0.0

    def failed(self, url: str) -> None:
        address = address_of(url)
        failures, _ = self._backoff.pop(address, (0, 0.0))
        delay = min(self.backoff_base_s * 2 ** min(failures, 30), self.backoff_max_s)
        self._backoff[address] = (failures + 1, self._clock() + delay)
        while len(self._backoff) > MAX_ADDRESSES:
            self._backoff.popitem(last=False)

    def succeeded(self, url: str) -> None:
        self._backoff.pop(address_of(url), None)
