"""The gossip peer score: what a neighbour's behaviour costs it here, now (GossipSub v1.1's score).

score = trust_weight * min(trust * n, trust_cap)                      EigenTrust, 1.0 = an even share
      + first_delivery_weight * min(first deliveries, cap)           P2
      + invalid_weight * invalid ** 2                                 P4 (bad signatures, malformed,
                                                                       flagrant skew, validator rejects)
      + behaviour_weight * max(0, penalty - behaviour_threshold) ** 2  P7 (broken IHAVE promises)

The counters decay with half-lives, so an old fault fades. The score acts against the thresholds in
GossipParams: below gossip_threshold no IHAVE to or from the peer, below publish_threshold no flood
publish to it, below graylist_threshold all its messages are ignored and at the next heartbeat it is
disconnected (the node holds it off for ``offender_backoff_s``). The trust layer's behaviour score
keeps its own, slower memory; this one is the gossip layer's immediate consequence.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from f0mesh.errors import ConfigError


@dataclass(frozen=True, slots=True)
class PeerScoreParams:
    trust_weight: float = 1.0
    trust_cap: float = 10.0  # relative trust counted at most this many even shares
    first_delivery_weight: float = 0.1
    first_delivery_cap: float = 100.0
    invalid_weight: float = -10.0  # one invalid message -10, two -40, three -90 (below graylist)
    behaviour_weight: float = -1.0
    behaviour_threshold: float = 2.0  # broken promises forgiven before they count
    first_delivery_half_life_s: float = 60.0
    invalid_half_life_s: float = 600.0
    behaviour_half_life_s: float = 300.0
    decay_to_zero: float = 0.01
    offender_backoff_s: float = 300.0  # how long a disconnected offender is refused and not dialled
    max_peers: int = 10_000

    def __post_init__(self) -> None:
        for name in ("trust_weight", "first_delivery_weight"):
            _check(name, getattr(self, name), lambda v: v >= 0, ">= 0")
        for name in ("invalid_weight", "behaviour_weight"):
            _check(name, getattr(self, name), lambda v: v <= 0, "<= 0")
        for name in (
            "trust_cap",
            "first_delivery_cap",
            "first_delivery_half_life_s",
            "invalid_half_life_s",
            "behaviour_half_life_s",
            "decay_to_zero",
            "offender_backoff_s",
        ):
            _check(name, getattr(self, name), lambda v: v > 0, "> 0")
        _check("behaviour_threshold", self.behaviour_threshold, lambda v: v >= 0, ">= 0")
        if not isinstance(self.max_peers, int) or self.max_peers < 1:
            raise ConfigError(f"gossip score max_peers must be an integer >= 1, got {self.max_peers!r}")


def _check(name: str, value: float, ok: Callable[[float], bool], words: str) -> None:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or not ok(value)
    ):
        raise ConfigError(f"gossip score {name} must be {words}, got {value!r}")


DECAY_STEP_S = 0.5


class _Counters:
    __slots__ = ("first", "invalid", "penalty", "updated")

    def __init__(self, now: float) -> None:
        self.first = 0.0
        self.invalid = 0.0
        self.penalty = 0.0
        self.updated = now


class PeerScores:
    """Decaying counters per neighbour and the score derived from them and the trust scores.

    ``trust()`` is read once per ``refresh()`` (each heartbeat), never per message. Bounded to
    ``max_peers`` records, the least recently touched dropped first.
    """

    def __init__(
        self,
        params: PeerScoreParams | None = None,
        trust: Callable[[], Mapping[str, float]] = dict,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.params = params or PeerScoreParams()
        self._trust_source = trust
        self._clock = clock
        self._trust: Mapping[str, float] = {}
        self._shares = 1  # peers the trust scores are shared among
        self._records: OrderedDict[str, _Counters] = OrderedDict()
        self.refresh()

    def refresh(self) -> None:
        """Take the trust layer's current scores (held, not copied: a simulation shares one map)."""
        self._trust = self._trust_source()
        self._shares = max(1, len(self._trust))

    def trust(self, peer: str) -> float:
        """The peer's trust as a relative share (1.0 = 1 / scored peers; 0 if unscored)."""
        value = self._trust.get(peer, 0.0)
        return value * self._shares if value > 0 else 0.0

    def first_delivery(self, peer: str) -> None:
        rec = self._touch(peer)
        rec.first = min(self.params.first_delivery_cap, rec.first + 1)

    def invalid(self, peer: str) -> None:
        self._touch(peer).invalid += 1

    def broken_promise(self, peer: str, count: float = 1.0) -> None:
        self._touch(peer).penalty += count

    def below(self, peer: str, threshold: float) -> bool:
        """score(peer) < threshold, without the arithmetic for a peer with no fault on record (the hot
        path: every message checks the graylist). Thresholds are <= 0, and so is no fault's score."""
        rec = self._records.get(peer)
        if rec is None or (rec.invalid == 0 and rec.penalty <= self.params.behaviour_threshold):
            return False
        return self.score(peer) < threshold

    def score(self, peer: str) -> float:
        p = self.params
        value = p.trust_weight * min(self.trust(peer), p.trust_cap)
        rec = self._records.get(peer)
        if rec is None:
            return value
        self._decay(rec)
        excess = max(0.0, rec.penalty - p.behaviour_threshold)
        return (
            value
            + p.first_delivery_weight * rec.first
            + p.invalid_weight * rec.invalid**2
            + p.behaviour_weight * excess**2
        )

    def counters(self, peer: str) -> dict[str, float]:
        rec = self._records.get(peer)
        if rec is None:
            return {}
        self._decay(rec)
        return {"first_deliveries": rec.first, "invalid": rec.invalid, "broken_promises": rec.penalty}

    def forget(self, peer: str) -> None:
        self._records.pop(peer, None)

    def _touch(self, peer: str) -> _Counters:
        rec = self._records.get(peer)
        if rec is None:
            rec = self._records[peer] = _Counters(self._clock())
            while len(self._records) > self.params.max_peers:
                self._records.popitem(last=False)
        else:
            self._decay(rec)
            self._records.move_to_end(peer)
        return rec

    def _decay(self, rec: _Counters) -> None:
        now = self._clock()
        elapsed = now - rec.updated
        if elapsed < DECAY_STEP_S:  # half-lives are minutes: decaying per message is wasted work
            return
        p = self.params
        floor = p.decay_to_zero
        rec.first = _faded(rec.first, elapsed, p.first_delivery_half_life_s, floor)
        rec.invalid = _faded(rec.invalid, elapsed, p.invalid_half_life_s, floor)
        rec.penalty = _faded(rec.penalty, elapsed, p.behaviour_half_life_s, floor)
        rec.updated = now


def _faded(value: float, elapsed: float, half_life: float, floor: float) -> float:
    value *= 0.5 ** (elapsed / half_life)
    return 0.0 if value < floor else value
