"""Hybrid Logical Clock (Kulkarni et al., 2014).

Timestamps stay close to wall-clock time, so they are meaningful to people and usable as LWW timestamps, yet
they respect causality and never go backwards when the local wall clock steps back.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

import msgpack

from f0mesh.crdt.bounds import LOGICAL_BOUND, MAX_DRIFT_MS
from f0mesh.errors import F0MeshError

_WALL_DIGITS = 15
_LOGICAL_DIGITS = 10
MAX_WALL_MS = 10**_WALL_DIGITS - 1
MAX_LOGICAL = 10**_LOGICAL_DIGITS - 1


def new_node_id() -> str:
    """A random id; 64 bits make collisions between replicas negligible without any coordination."""
    return secrets.token_hex(8)


class ClockSkewError(F0MeshError, ValueError):
    """A remote timestamp is further ahead of our wall clock than we tolerate.

    Accepting it would drag every later local timestamp into the future, so the caller must reject it.
    """

    code = "clock_skew"

    def __init__(self, ahead_ms: int, max_skew_ms: int) -> None:
        super().__init__(
            f"remote timestamp is {ahead_ms} ms ahead of the local wall clock (max skew {max_skew_ms} ms)"
        )
        self.ahead_ms = ahead_ms
        self.max_skew_ms = max_skew_ms

    @property
    def flagrant(self) -> bool:
        """Further ahead than an honest clock gets: one that adopted a stranger's stamp at the bound runs
        max_skew_ms ahead, so only what is half as much again beyond is held against the sender."""
        return self.ahead_ms > self.max_skew_ms * 3 // 2


@dataclass(frozen=True, order=True, slots=True)
class HLCTimestamp:
    """Ordered by (wall_ms, logical, node); the node breaks ties, so two clocks never issue equal stamps.

    Bounds keep the fixed-width string form sortable: wall_ms < 10**15 (year 33658), logical < 10**10.
    """

    wall_ms: int
    logical: int
    node: str

    def __post_init__(self) -> None:
        wall_ms, logical = self.wall_ms, self.logical
        if (
            type(wall_ms) is int
            and type(logical) is int
            and type(self.node) is str
            and 0 <= wall_ms <= MAX_WALL_MS
            and 0 <= logical <= MAX_LOGICAL
        ):
            return  # the common case, checked without building the error messages' loop (every envelope)
        for name, value, high in (
            ("wall_ms", self.wall_ms, MAX_WALL_MS),
            ("logical", self.logical, MAX_LOGICAL),
        ):
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"{name} must be an int, not {type(value).__name__}")
            if not 0 <= value <= high:
                raise ValueError(f"{name} must be in 0..{high}, got {value}")
        if not isinstance(self.node, str):
            raise TypeError(f"node must be a str, not {type(self.node).__name__}")

    def to_bytes(self) -> bytes:
        return msgpack.packb([self.wall_ms, self.logical, self.node], use_bin_type=True)

    @classmethod
    def from_bytes(cls, data: bytes) -> HLCTimestamp:
        try:
            wall_ms, logical, node = msgpack.unpackb(data, raw=False)
            return cls(wall_ms, logical, node)
        except (ValueError, TypeError, msgpack.UnpackException) as exc:
            raise ValueError(f"malformed HLC timestamp: {exc}") from exc

    def to_str(self) -> str:
        """Fixed-width decimal fields, so plain string order equals timestamp order."""
        # _WALL_DIGITS, _LOGICAL_DIGITS; %-formatting takes 60 % of an f-string's time (every envelope)
        return "%015d-%010d-%s" % (self.wall_ms, self.logical, self.node)  # noqa: UP031

    @classmethod
    def parse(cls, text: str) -> HLCTimestamp:
        parts = text.split("-", 2)
        if (
            len(parts) != 3
            or len(parts[0]) != _WALL_DIGITS
            or len(parts[1]) != _LOGICAL_DIGITS
            or not (parts[0].isascii() and parts[0].isdigit() and parts[1].isascii() and parts[1].isdigit())
        ):
            raise ValueError(f"not an HLC timestamp string: {text!r}")
        return cls(int(parts[0]), int(parts[1]), parts[2])

    def __str__(self) -> str:
        return self.to_str()


def _system_clock_ms() -> int:
    return time.time_ns() // 1_000_000


class HLC:
    """One clock per node; not thread-safe (a node drives it from its event loop).

    To resume after a restart without ever reissuing an old timestamp, feed the last persisted timestamp to
    update().
    """

    def __init__(
        self,
        node_id: str | None = None,
        *,
        max_skew_ms: int = MAX_DRIFT_MS,
        clock: Callable[[], int] | None = None,
    ) -> None:
        if max_skew_ms < 0:
            raise ValueError(f"max_skew_ms must be >= 0, got {max_skew_ms}")
        self._node = new_node_id() if node_id is None else node_id
        self._max_skew_ms = max_skew_ms
        self._clock = clock or _system_clock_ms
        self._last: HLCTimestamp | None = None

    @property
    def node_id(self) -> str:
        return self._node

    @property
    def max_skew_ms(self) -> int:
        return self._max_skew_ms

    @property
    def last(self) -> HLCTimestamp | None:
        """The latest timestamp issued or observed; None before the first event."""
        return self._last

    def now(self) -> HLCTimestamp:
        """A timestamp for a local or send event, strictly greater than every earlier one from this clock."""
        wall = self._clock()
        last = self._last
        if last is None or wall > last.wall_ms:
            return self._issue(wall, 0)
        return self._issue(last.wall_ms, last.logical + 1)

    def update(self, remote: HLCTimestamp, wall_ms: int | None = None) -> HLCTimestamp:
        """A timestamp for receiving `remote`: greater than both it and everything this clock issued.

        ``wall_ms`` is the clock's reading if the caller has one (a gossip frame reads it once for all
        its envelopes). Raises ClockSkewError when remote is more than max_skew_ms ahead, ValueError
        when its logical counter is above LOGICAL_BOUND; either way the clock is left untouched.
        """
        wall = self._clock() if wall_ms is None else wall_ms
        self.check(remote, wall)
        last = self._last
        local_wall, local_logical = (last.wall_ms, last.logical) if last is not None else (-1, -1)
        top = max(local_wall, remote.wall_ms, wall)
        if top == local_wall == remote.wall_ms:
            logical = max(local_logical, remote.logical) + 1
        elif top == local_wall:
            logical = local_logical + 1
        elif top == remote.wall_ms:
            logical = remote.logical + 1
        else:
            logical = 0
        return self._issue(top, logical)

    def check(self, remote: HLCTimestamp, wall_ms: int) -> None:
        """What update() refuses, without moving the clock: a batch of stamps read against one wall
        reading (``wall_ms``) can be checked one by one and the clock moved once, by the newest."""
        if not isinstance(remote, HLCTimestamp):
            raise TypeError(f"expected HLCTimestamp, not {type(remote).__name__}")
        if remote.logical > LOGICAL_BOUND:
            raise ValueError(f"remote logical counter {remote.logical} is above {LOGICAL_BOUND}")
        ahead = remote.wall_ms - wall_ms
        if ahead > self._max_skew_ms:
            raise ClockSkewError(ahead, self._max_skew_ms)

    def wall_ms(self) -> int:
        """The wall clock this HLC reads, in ms: the reading check() and update() take."""
        return self._clock()

    def _issue(self, wall_ms: int, logical: int) -> HLCTimestamp:
        """Past LOGICAL_BOUND the wall time moves on 1 ms instead, so issuing never fails whatever the clock
        adopted earlier (and the stamp stays within what peers accept)."""
        if logical > LOGICAL_BOUND:
            wall_ms, logical = wall_ms + 1, 0
        stamp = HLCTimestamp(wall_ms, logical, self._node)
        self._last = stamp
        return stamp

    def __repr__(self) -> str:
        return f"HLC(node_id={self._node!r}, last={self._last!r})"
