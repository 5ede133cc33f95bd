"""The gossip peer score: what a neighbour's behaviour costs it here, now (GossipSub v1.1's score).

score = trust_weight * min(trust * n, trust_cap)                      EigenTrust, 1.0 = an even share
      + time_in_mesh_weight * min(seconds in a mesh / quantum, cap)  P1
      + first_delivery_weight * min(first deliveries, cap)           P2
      + mesh_delivery_weight * min(deficit, cap) ** 2                P3 (mesh delivery deficit)
      + invalid_weight * invalid ** 2                                 P4 (bad signatures, malformed,
                                                                       flagrant skew, validator rejects)
      + behaviour_weight * max(0, penalty - behaviour_threshold) ** 2  P7 (broken IHAVE promises)

P1 rewards a mesh peer for staying (time since it entered any of this node's topic meshes, taken
each heartbeat). P3 is GossipSub's deficit measured against the traffic actually seen, so a quiet
topic costs nobody: once a peer has been in a mesh for mesh_delivery_activation_s, every first
receipt of a message of that mesh's topic expects a delivery from it, and it delivers when its
copy is the first or comes within mesh_delivery_window_s of the first (once per message). The
deficit is mesh_delivery_threshold * expected - delivered. Weighted, a mesh peer that forwards
nothing (a black hole, a freeloader) falls below one that does, and the mesh drops peers whose
score is negative at the next heartbeat (topic_mesh.py); out of every mesh, P3 no longer counts
(its counters decay, and count again if it is grafted back). Large envelopes announced by
IDONTWANT expect nothing: the peers were told not to send them. Capped, P3 alone stays above the
default gossip threshold: its consequence is leaving the mesh, not losing gossip. It is off by
default, as GossipSub leaves it to each topic's parameters: a mesh peer downstream of this node
gets most messages from it and never sends those back, which in a sparse mesh (3 to 6 links) reads
as a deficit, and pruning it there costs more than the black hole it would catch.

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
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass

from f0mesh.errors import ConfigError


@dataclass(frozen=True, slots=True)
class PeerScoreParams:
    trust_weight: float = 1.0
    trust_cap: float = 10.0  # relative trust counted at most this many even shares
    time_in_mesh_weight: float = 0.01  # P1, per quantum: at most 0.01 * 300 = 3.0
    time_in_mesh_quantum_s: float = 1.0
    time_in_mesh_cap: float = 300.0
    first_delivery_weight: float = 0.1
    first_delivery_cap: float = 100.0
    # P3 is off unless set (as GossipSub leaves it to each topic's parameters): a mesh peer downstream
    # of this node gets most messages from it and so never sends them back; in a sparse mesh (3 to 6
    # links) that reads as a deficit. -1.0 gives at most -1.0 * 3 ** 2 = -9, above gossip_threshold.
    mesh_delivery_weight: float = 0.0
    mesh_delivery_threshold: float = 0.1  # share of a mesh topic's messages a mesh peer should deliver
    mesh_delivery_cap: float = 3.0  # the deficit counted at most
    mesh_delivery_window_s: float = 2.0  # a copy this soon after the first still counts as delivered
    mesh_delivery_activation_s: float = 10.0  # in a mesh this long before anything is expected of it
    mesh_delivery_half_life_s: float = 60.0
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
        for name in ("trust_weight", "first_delivery_weight", "time_in_mesh_weight"):
            _check(name, getattr(self, name), lambda v: v >= 0, ">= 0")
        for name in ("invalid_weight", "behaviour_weight", "mesh_delivery_weight"):
            _check(name, getattr(self, name), lambda v: v <= 0, "<= 0")
        _check("mesh_delivery_threshold", self.mesh_delivery_threshold, lambda v: 0 <= v <= 1, "in [0, 1]")
        _check("mesh_delivery_activation_s", self.mesh_delivery_activation_s, lambda v: v >= 0, ">= 0")
        for name in (
            "trust_cap",
            "time_in_mesh_quantum_s",
            "time_in_mesh_cap",
            "first_delivery_cap",
            "mesh_delivery_cap",
            "mesh_delivery_window_s",
            "mesh_delivery_half_life_s",
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
MAX_FIRST_RECEIPTS = 4096  # recent first receipts remembered for P3's window


class _Counters:
    __slots__ = ("delivered", "expected", "first", "invalid", "meshed_since", "penalty", "updated")

    def __init__(self, now: float) -> None:
        self.first = 0.0
        self.invalid = 0.0
        self.penalty = 0.0
        self.expected = 0.0  # P3: messages of its mesh topics this node received while it was active
        self.delivered = 0.0  # P3: of those, how many it brought first or within the window
        self.meshed_since: float | None = None  # P1: when it entered a mesh (None: in none)
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
        self._meshed: set[str] = set()  # peers whose record has meshed_since set
        # message id -> (clock time of its first receipt, mesh peers credited with it), newest last
        self._first_receipts: OrderedDict[str, tuple[float, set[str]]] = OrderedDict()
        self.refresh()

    def refresh(self) -> None:
        """Take the trust layer's current scores (held, not copied: a simulation shares one map)."""
        self._trust = self._trust_source()
        self._shares = max(1, len(self._trust))

    def trust(self, peer: str) -> float:
        """The peer's trust as a relative share (1.0 = 1 / scored peers; 0 if unscored)."""
        value = self._trust.get(peer, 0.0)
        return value * self._shares if value > 0 else 0.0

    def first_delivery(self, peer: str, count: int = 1) -> None:
        rec = self._touch(peer)
        rec.first = min(self.params.first_delivery_cap, rec.first + count)

    def invalid(self, peer: str) -> None:
        self._touch(peer).invalid += 1

    def broken_promise(self, peer: str, count: float = 1.0) -> None:
        self._touch(peer).penalty += count

    def meshed(self, peers: set[str]) -> None:
        """The peers in any topic mesh now (each heartbeat): P1's clock starts or stops."""
        now = self._clock()
        for peer in self._meshed - peers:
            rec = self._records.get(peer)
            if rec is not None:
                rec.meshed_since = None
        for peer in peers - self._meshed:
            rec = self._touch(peer)
            rec.meshed_since = now
        self._meshed = {p for p in peers if p in self._records}

    @property
    def p3(self) -> bool:
        """Whether P3 counts: its bookkeeping runs on every receipt, for nothing while unweighted."""
        return self.params.mesh_delivery_weight != 0

    def first_receipt(self, message_id: str, sender: str, mesh: Collection[str], *, expect: bool) -> None:
        """A message's first copy came from ``sender``; ``mesh`` are its topic's mesh peers, each
        expected to deliver it (P3) unless ``expect`` is False (they were told IDONTWANT)."""
        now = self._clock()
        credited: set[str] = set()
        if expect:
            for peer in mesh:
                rec = self._records.get(peer)
                if self._active(rec, now):
                    assert rec is not None
                    self._decay(rec)
                    rec.expected += 1
        if sender in mesh:
            self._touch(sender).delivered += 1
            credited.add(sender)
        self._first_receipts[message_id] = (now, credited)
        while len(self._first_receipts) > MAX_FIRST_RECEIPTS:
            self._first_receipts.popitem(last=False)

    def duplicate(self, message_id: str, sender: str, mesh: Collection[str]) -> None:
        """A further copy: it counts as delivered (P3) from a mesh peer within the window, once."""
        first = self._first_receipts.get(message_id)
        if first is None or sender not in mesh or sender in first[1]:
            return
        if self._clock() - first[0] <= self.params.mesh_delivery_window_s:
            first[1].add(sender)
            self._touch(sender).delivered += 1

    def below(self, peer: str, threshold: float) -> bool:
        """score(peer) < threshold, without the arithmetic for a peer with no fault on record (the hot
        path: every message checks the graylist). Thresholds are <= 0, and so is no fault's score."""
        rec = self._records.get(peer)
        if rec is None or (
            rec.invalid == 0 and rec.penalty <= self.params.behaviour_threshold and self._deficit(rec) == 0
        ):
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
        in_mesh = 0.0
        if rec.meshed_since is not None:
            quanta = (self._clock() - rec.meshed_since) / p.time_in_mesh_quantum_s
            in_mesh = min(quanta, p.time_in_mesh_cap)
        return (
            value
            + p.time_in_mesh_weight * in_mesh
            + p.first_delivery_weight * rec.first
            + p.mesh_delivery_weight * self._deficit(rec) ** 2
            + p.invalid_weight * rec.invalid**2
            + p.behaviour_weight * excess**2
        )

    def counters(self, peer: str) -> dict[str, float]:
        rec = self._records.get(peer)
        if rec is None:
            return {}
        self._decay(rec)
        return {
            "first_deliveries": rec.first,
            "invalid": rec.invalid,
            "broken_promises": rec.penalty,
            "mesh_expected": rec.expected,
            "mesh_delivered": rec.delivered,
        }

    def forget(self, peer: str) -> None:
        self._records.pop(peer, None)
        self._meshed.discard(peer)

    def _active(self, rec: _Counters | None, now: float) -> bool:
        """In a mesh long enough for P3 to expect deliveries of it."""
        return (
            rec is not None
            and rec.meshed_since is not None
            and now - rec.meshed_since >= self.params.mesh_delivery_activation_s
        )

    def _deficit(self, rec: _Counters) -> float:
        """P3's deficit, counted while the peer is in a mesh: once pruned, its consequence is done."""
        if rec.meshed_since is None:
            return 0.0
        p = self.params
        return min(max(0.0, p.mesh_delivery_threshold * rec.expected - rec.delivered), p.mesh_delivery_cap)

    def _touch(self, peer: str) -> _Counters:
        rec = self._records.get(peer)
        if rec is None:
            rec = self._records[peer] = _Counters(self._clock())
            while len(self._records) > self.params.max_peers:
                self._meshed.discard(self._records.popitem(last=False)[0])
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
        rec.expected = _faded(rec.expected, elapsed, p.mesh_delivery_half_life_s, floor)
        rec.delivered = _faded(rec.delivered, elapsed, p.mesh_delivery_half_life_s, floor)
        rec.updated = now


def _faded(value: float, elapsed: float, half_life: float, floor: float) -> float:
    value *= 0.5 ** (elapsed / half_life)
    return 0.0 if value < floor else value
