"""Log lines about what peers send, at most one per key and interval.

A hostile peer spends a few bytes on the wire for each malformed message; one log line (~150 bytes)
per message would turn the log into an amplifier that fills the disk and buries everything else.
The first occurrence of a key is logged at once, later ones within the interval are only counted,
and the count rides on the next line logged for that key.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable

DEFAULT_INTERVAL_S = 5.0
DEFAULT_MAX_KEYS = 1024  # keys are often (peer, reason): bounded so many peers cannot grow it


class LogThrottle:
    def __init__(
        self,
        logger: logging.Logger,
        interval_s: float = DEFAULT_INTERVAL_S,
        max_keys: int = DEFAULT_MAX_KEYS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._logger = logger
        self._interval_s = interval_s
        self._max_keys = max_keys
        self._clock = clock
        self._keys: OrderedDict[Hashable, list[float]] = OrderedDict()  # key -> [last logged at, suppressed]

    def warning(self, key: Hashable, msg: str, *args: object, exc_info: bool = False) -> bool:
        return self.log(logging.WARNING, key, msg, *args, exc_info=exc_info)

    def info(self, key: Hashable, msg: str, *args: object) -> bool:
        return self.log(logging.INFO, key, msg, *args)

    def log(self, level: int, key: Hashable, msg: str, *args: object, exc_info: bool = False) -> bool:
        """Log unless ``key`` was logged less than the interval ago; returns whether it logged."""
        now = self._clock()
        entry = self._keys.get(key)
        if entry is not None and now - entry[0] < self._interval_s:
            entry[1] += 1
            return False
        suppressed = int(entry[1]) if entry is not None else 0
        self._keys[key] = [now, 0]
        self._keys.move_to_end(key)
        while len(self._keys) > self._max_keys:
            self._keys.popitem(last=False)
        if suppressed:
            msg += " (%d more like it not logged)"
            args = (*args, suppressed)
        self._logger.log(level, msg, *args, exc_info=exc_info)
        return True
