"""The trust layer of one node, composed: opinions, behaviour, graph, scores and rate limits.

Pure state with no I/O: the node persists ``to_dict()`` and gossips ``published_opinions()`` on the
``trust`` topic. Scores are recomputed by ``refresh()`` (called periodically and after changes),
never per message; the rate limiters follow the scores.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from typing import Any

from f0mesh.trust.behaviour import PeerScore, sync_own_edges
from f0mesh.trust.graph import TrustGraph
from f0mesh.trust.rate_limit import RateLimiter
from f0mesh.trust.score import ScoreCache
from f0mesh.trust.score_params import RateParams, TrustParams

MAX_PUBLISHED_EDGES = 1000

# A young mesh has no trust edges yet, so every origin sits at the floor: the floor must still let
# an honest peer publish a burst (a client's batch, start-up telemetry) without rate-limit drops.
NODE_TRUST_PARAMS = TrustParams(origin_rate=RateParams(min_rate=5.0, min_burst=100.0))


class TrustService:
    def __init__(
        self,
        self_id: str,
        pretrusted: Iterable[str] = (),
        params: TrustParams | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.self_id = self_id
        self.params = params or NODE_TRUST_PARAMS
        self.graph = TrustGraph()
        self.opinions: dict[str, float] = {}
        self.peer_score = PeerScore(self.params.behaviour, clock)
        self.cache = ScoreCache(self.graph, {self_id, *pretrusted}, self.params.score, clock)
        self.origin_limiter = RateLimiter(self.params.origin_rate, clock)
        self.neighbour_limiter = RateLimiter(self.params.neighbour_rate, clock)
        self._clock = clock
        self._published: dict[str, float] | None = None
        self._published_at = -math.inf
        self._operator_changed = False

    def add_pretrusted(self, peer_id: str) -> None:
        if peer_id not in self.cache.pretrusted:
            self.cache.set_pretrusted({*self.cache.pretrusted, peer_id})

    def set_opinion(self, peer_id: str, weight: float) -> None:
        if not (math.isfinite(weight) and 0.0 <= weight <= 1.0):
            raise ValueError("trust weight must be between 0 and 1")
        self.opinions[peer_id] = weight
        self._operator_changed = True
        self.refresh(force=True)

    def record(self, peer_id: str, event: Any, count: float = 1.0) -> None:
        """Behaviour feedback from gossip (valid first delivery, bad signature, replay, flood...);
        ``count`` of them at once (gossip credits a frame's first deliveries together)."""
        self.peer_score.record(peer_id, event, count)

    def refresh(self, force: bool = False) -> bool:
        sync_own_edges(self.graph, self.self_id, self.opinions, self.peer_score)
        changed = self.cache.refresh(force=force)
        if changed:
            scores = self.cache.scores()
            self.origin_limiter.set_scores(scores)
            self.neighbour_limiter.set_scores(scores)
        return changed

    def scores(self) -> dict[str, float]:
        return dict(self.cache.scores())

    def published_opinions(self) -> dict[str, Any]:
        """This node's out-edges for the ``trust`` topic; the version orders them across restarts."""
        edges = dict(sorted(self.graph.out_edges(self.self_id).items())[:MAX_PUBLISHED_EDGES])
        return {"version": time.time_ns() // 1_000_000, "edges": edges}

    def opinions_due(self) -> dict[str, Any] | None:
        """``published_opinions()`` when they are worth a gossip message, else None (see TrustParams)."""
        edges = self.graph.out_edges(self.self_id)
        last = self._published
        if last is not None and not self._operator_changed:
            if self._clock() - self._published_at < self.params.publish_min_interval_s:
                return None
            step = self.params.publish_min_change
            if edges.keys() == last.keys() and all(abs(w - last[p]) < step for p, w in edges.items()):
                return None
        if last is not None and edges == last:
            self._operator_changed = False
            return None
        return self.published_opinions()

    def mark_published(self, payload: dict[str, Any]) -> None:
        self._published = dict(payload["edges"])
        self._published_at = self._clock()
        self._operator_changed = False

    def apply_published(self, origin: str, payload: Any) -> bool:
        """Another peer's signed opinions (the envelope's signature authenticates ``origin``)."""
        if origin == self.self_id or not isinstance(payload, dict):
            return False
        version, edges = payload.get("version"), payload.get("edges")
        if not isinstance(version, int) or not isinstance(edges, dict) or len(edges) > MAX_PUBLISHED_EDGES:
            return False
        if not self._room_for(origin, len(edges)):
            return False
        try:
            return self.graph.apply_published(origin, edges, version)
        except (ValueError, TypeError):
            return False

    def _room_for(self, origin: str, edges: int) -> bool:
        """Make room for ``origin``'s set under the caps by forgetting less trusted publishers; False
        (nothing forgotten) if the room would have to come from publishers trusted as much or more."""
        graph, params = self.graph, self.params
        held = graph.publishers()
        others = [p for p in held if p != origin]
        sizes = {p: len(graph.out_edges(p)) for p in others}
        count, total = len(others) + 1, sum(sizes.values()) + edges
        if count <= params.max_publishers and total <= params.max_remote_edges:
            return True
        scores = self.cache.scores()
        mine = scores.get(origin, 0.0)
        evict = []
        for peer in sorted(others, key=lambda p: scores.get(p, 0.0)):  # stable: among equals, oldest first
            if count <= params.max_publishers and total <= params.max_remote_edges:
                break
            if scores.get(peer, 0.0) >= mine:
                return False
            evict.append(peer)
            count, total = count - 1, total - sizes[peer]
        if count > params.max_publishers or total > params.max_remote_edges:
            return False
        for peer in evict:
            graph.forget_published(peer)
        return True

    def components(self) -> dict[str, dict[str, Any]]:
        """Per peer: the operator's opinion, observed behaviour, in-edges and global score."""
        scores = self.cache.scores()
        in_edges: dict[str, int] = {}
        for edge in self.graph.edges():
            in_edges[edge["to"]] = in_edges.get(edge["to"], 0) + 1
        peers = set(scores) | set(self.opinions) | set(self.peer_score.peers())
        return {
            p: {
                "score": scores.get(p, 0.0),
                "opinion": self.opinions.get(p),
                "behaviour": self.peer_score.behaviour(p),
                "trusted_by": in_edges.get(p, 0),
                "pretrusted": p in self.cache.pretrusted,
            }
            for p in sorted(peers)
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "opinions": dict(self.opinions),
            "behaviour": self.peer_score.to_dict(),
            "graph": self.graph.to_dict(),
        }

    def load(self, data: dict[str, Any]) -> None:
        self.opinions = {str(k): float(v) for k, v in data.get("opinions", {}).items()}
        if "behaviour" in data:
            self.peer_score = PeerScore.from_dict(data["behaviour"], self.params.behaviour)
        if "graph" in data:
            restored = TrustGraph.from_dict(data["graph"])
            for frm in restored.nodes():
                version = restored.published_version(frm)
                if version is not None and frm != self.self_id:
                    self.graph.apply_published(frm, restored.out_edges(frm), version)
        self.refresh(force=True)
