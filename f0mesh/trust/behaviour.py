"""Behaviour feedback: what this node saw a peer do, turned into its own trust edge to that peer.

Modelled on the GossipSub v1.1 peer score: counters per peer for useful work (first deliveries
of valid messages) and for faults (bad signatures, replays, rate-limit violations, malformed
messages), each decaying exponentially towards 0 so old behaviour fades. The score is keyed by
PeerId, not by link, and is serialisable, so a peer cannot wash its record by reconnecting and
this node does not forget it by restarting (decay pauses while the node is down).
"""

from __future__ import annotations

import enum
import math
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any

from f0mesh.trust.graph import TrustGraph
from f0mesh.trust.score_params import BehaviourParams

SNAPSHOT_FORMAT = 1


class Event(enum.StrEnum):
    FIRST_DELIVERY = "first_delivery"
    INVALID_SIGNATURE = "invalid_signature"
    REPLAY = "replay"
    RATE_LIMITED = "rate_limited"
    MALFORMED = "malformed"  # includes too-large messages: the sender broke the protocol either way


_PENALTY_WEIGHT = {
    Event.INVALID_SIGNATURE: "invalid_signature_weight",
    Event.REPLAY: "replay_weight",
    Event.RATE_LIMITED: "rate_limited_weight",
    Event.MALFORMED: "malformed_weight",
}


class _Record:
    __slots__ = ("counts", "updated")

    def __init__(self, updated: float) -> None:
        self.counts: dict[Event, float] = {}
        self.updated = updated


class PeerScore:
    """Decaying per-peer counters and the behaviour value in [-1, 1] derived from them.

    Bounded to params.max_peers records; the least recently updated peer is forgotten first.
    """

    def __init__(
        self, params: BehaviourParams | None = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.params = params or BehaviourParams()
        self._clock = clock
        self._records: OrderedDict[str, _Record] = OrderedDict()

    def record(self, peer: str, event: Event | str, count: float = 1.0) -> None:
        """Count `count` occurrences of an event for a peer (counters are capped)."""
        event = Event(event)
        if not math.isfinite(count) or count < 0:
            raise ValueError(f"count must be finite and >= 0, got {count!r}")
        if count == 0:
            return
        now = self._clock()
        rec = self._records.get(peer)
        if rec is None:
            rec = self._records[peer] = _Record(now)
        else:
            self._decay(rec, now)
            self._records.move_to_end(peer)
        cap = self.params.first_delivery_cap if event is Event.FIRST_DELIVERY else self.params.penalty_cap
        rec.counts[event] = min(cap, rec.counts.get(event, 0.0) + count)
        while len(self._records) > self.params.max_peers:
            self._records.popitem(last=False)

    def counters(self, peer: str) -> dict[str, float]:
        """The decayed counters of one peer ({} if it has none left)."""
        rec = self._current(peer)
        return {} if rec is None else {str(e): v for e, v in sorted(rec.counts.items())}

    def behaviour(self, peer: str) -> float:
        """clamp(max_reward * min(first, cap) / cap - sum(weight_e * count_e ** 2), -1, 1); 0 if unknown."""
        rec = self._current(peer)
        if rec is None:
            return 0.0
        p = self.params
        reward = p.max_reward * min(rec.counts.get(Event.FIRST_DELIVERY, 0.0), p.first_delivery_cap)
        reward /= p.first_delivery_cap
        penalty = math.fsum(
            getattr(p, weight) * rec.counts.get(event, 0.0) ** 2 for event, weight in _PENALTY_WEIGHT.items()
        )
        return max(-1.0, min(1.0, reward - penalty))

    def peers(self) -> list[str]:
        """Peers with any counter left after decay, sorted."""
        return sorted(p for p in list(self._records) if self._current(p) is not None)

    def forget(self, peer: str) -> None:
        self._records.pop(peer, None)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready snapshot of the counters, decayed to now."""
        return {"format": SNAPSHOT_FORMAT, "peers": {peer: self.counters(peer) for peer in self.peers()}}

    @classmethod
    def from_dict(
        cls,
        data: Mapping[str, Any],
        params: BehaviourParams | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> PeerScore:
        """Rebuild from to_dict(); unknown event names (from a newer version) are skipped."""
        score = cls(params, clock)
        if not isinstance(data, Mapping) or data.get("format") != SNAPSHOT_FORMAT:
            raise ValueError("not a peer score snapshot of a known format")
        peers = data.get("peers")
        if not isinstance(peers, Mapping):
            raise ValueError("peer score snapshot has no 'peers' mapping")
        known = {str(e) for e in Event}
        for peer, counts in peers.items():
            if not isinstance(peer, str) or not isinstance(counts, Mapping):
                raise ValueError(f"bad peer score entry for {peer!r}")
            for name, value in counts.items():
                if name not in known:
                    continue
                if isinstance(value, bool) or not isinstance(value, int | float):
                    raise ValueError(f"counter {name!r} of {peer!r} is not a number: {value!r}")
                score.record(peer, name, value)
        return score

    def _current(self, peer: str) -> _Record | None:
        """The peer's record decayed to now, dropped if nothing is left of it."""
        rec = self._records.get(peer)
        if rec is None:
            return None
        self._decay(rec, self._clock())
        if not rec.counts:
            del self._records[peer]
            return None
        return rec

    def _decay(self, rec: _Record, now: float) -> None:
        elapsed = now - rec.updated
        if elapsed <= 0:
            return
        p = self.params
        reward_factor = 0.5 ** (elapsed / p.reward_half_life_s)
        penalty_factor = 0.5 ** (elapsed / p.penalty_half_life_s)
        for event in list(rec.counts):
            value = rec.counts[event] * (reward_factor if event is Event.FIRST_DELIVERY else penalty_factor)
            if value < p.decay_to_zero:
                del rec.counts[event]
            else:
                rec.counts[event] = value
        rec.updated = now


def own_edge_weight(opinion: float | None, behaviour: float, params: BehaviourParams | None = None) -> float:
    """Weight of this node's edge to a peer: round(clamp(base + behaviour, 0, 1), edge_decimals).

    base is the operator's explicit opinion, or params.default_opinion when there is none. An
    explicit opinion of 0 is a block and stays 0 whatever the behaviour; otherwise good behaviour
    adds at most max_reward and faults can take any opinion down to 0 (a trusted peer that turns
    bad loses its edge).
    """
    params = params or BehaviourParams()
    if opinion is not None and not (math.isfinite(opinion) and 0.0 <= opinion <= 1.0):
        raise ValueError(f"opinion must be in [0, 1], got {opinion!r}")
    if opinion == 0:
        return 0.0
    base = params.default_opinion if opinion is None else opinion
    return round(max(0.0, min(1.0, base + behaviour)), params.edge_decimals)


def sync_own_edges(
    graph: TrustGraph,
    self_id: str,
    opinions: Mapping[str, float],
    peer_score: PeerScore,
) -> bool:
    """Rewrite this node's out-edges from explicit opinions and observed behaviour.

    Call it periodically (not per message); rounding in own_edge_weight keeps slow decay from
    bumping the graph version on every call. A peer with neither an opinion nor a positive weight
    gets no edge; beyond graph.max_out_edges, explicit opinions and then the highest weights are
    kept. Returns whether the graph changed.
    """
    before = graph.version
    wanted: dict[str, float] = {}
    for peer in set(opinions).union(peer_score.peers()):
        if peer == self_id:
            continue
        weight = own_edge_weight(opinions.get(peer), peer_score.behaviour(peer), peer_score.params)
        if weight > 0 or peer in opinions:
            wanted[peer] = weight
    if len(wanted) > graph.max_out_edges:
        ranked = sorted(wanted, key=lambda p: (p not in opinions, -wanted[p], p))
        wanted = {p: wanted[p] for p in ranked[: graph.max_out_edges]}
    for peer in graph.out_edges(self_id):
        if peer not in wanted:
            graph.remove_opinion(self_id, peer)
    for peer, weight in sorted(wanted.items()):
        graph.set_opinion(self_id, peer, weight)
    return graph.version != before
