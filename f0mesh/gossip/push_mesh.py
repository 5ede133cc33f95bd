"""The eager-push peers of one node (GossipSub's mesh, without GRAFT/PRUNE on the wire).

Every new message goes at once to all push peers; other neighbours learn of it from the
heartbeat's IHAVE. Trust decides who is picked, not who gets a given message: while the node has
fewer than d_lo push peers it picks up to d of its links by trust roulette (with a floor, so new
honest peers still get in). A neighbour that pushes to this node is taken in too, up to d: that
makes the mesh nearly symmetric without a control message. A neighbour that asks (IWANT) for a
young message was missed by every push, as a low-trust leaf that no neighbour picked is: it is
taken in up to d_hi, so the IWANT doubles as GossipSub's GRAFT and the gap closes for the next
message. Neither needs a message kind a previous wire version would refuse.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Collection

from f0mesh.gossip.params import GossipParams
from f0mesh.trust import select_peers, with_floor

log = logging.getLogger(__name__)

Scores = Callable[[], dict[str, float]]


class PushMesh:
    def __init__(
        self, params: GossipParams, neighbours: Callable[[], list[str]], scores: Scores, rng: random.Random
    ) -> None:
        self._params = params
        self._neighbours = neighbours
        self._scores = scores
        self._rng = rng
        self.peers: set[str] = set()

    def targets(self, excluded: Collection[str]) -> list[str]:
        """The push peers not excluded, picking new ones first if too few are left."""
        if len(self.peers) < self._params.d_lo:
            self.maintain()
        return sorted(p for p in self.peers if p not in excluded)

    def maintain(self) -> None:
        """Drop peers whose link is gone; below d_lo, pick links by trust up to d."""
        linked = self._neighbours()
        self.peers.intersection_update(linked)
        if len(self.peers) >= self._params.d_lo:
            return
        candidates = [p for p in linked if p not in self.peers]
        if candidates:
            self.peers.update(self.rank(candidates, self._params.d - len(self.peers)))

    def pushed_by(self, peer: str) -> None:
        """A neighbour pushed to this node, so it has this node among its push peers: reciprocate."""
        if peer not in self.peers and len(self.peers) < self._params.d:
            self.peers.add(peer)

    def missed(self, peer: str) -> None:
        """A neighbour asked for a young message: no push reached it in time, so push to it."""
        if peer not in self.peers and len(self.peers) < self._params.d_hi:
            self.peers.add(peer)

    def remove(self, peer: str) -> None:
        self.peers.discard(peer)

    def rank(self, candidates: list[str], k: int) -> list[str]:
        """Up to k candidates by roulette over trust, with a floor so unscored ones get a chance."""
        try:
            weights = with_floor(self._scores(), candidates, self._params.floor_weight)
        except Exception:  # a broken score source must not stop delivery: fall back to uniform
            log.exception("gossip trust scores unavailable; choosing uniformly")
            weights = dict.fromkeys(candidates, 1.0)
        return select_peers(weights, k, self._rng)
