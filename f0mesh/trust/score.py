"""Global trust scores: PageRank personalised to pre-trusted peers (EigenTrust, Kamvar et al. 2003).

The random walk follows trust edges with probability alpha and otherwise jumps back to a
pre-trusted peer, and a truster with no outgoing trust also hands its mass to the pre-trusted
peers (EigenTrust's rule for peers without opinions). Score therefore only reaches a region of
the graph through edges from peers that already hold score: a clique of fake identities that
trust each other, with no edge into it from the honest region, ends with nothing, and one careless
attack edge gives it at most alpha / (1 - alpha) times the mass that edge carries.

Each truster's out-weights are normalised to sum to 1 (EigenTrust's c_ij = s_ij / sum_j s_ij),
so what counts is how a peer divides its trust, not how much of it it claims to hand out.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Mapping
from types import MappingProxyType

from f0mesh.trust.graph import TrustGraph
from f0mesh.trust.pagerank import pagerank
from f0mesh.trust.score_params import ScoreParams


def compute_scores(
    graph: TrustGraph, pretrusted: Iterable[str], params: ScoreParams | None = None
) -> dict[str, float]:
    """Scores for every node of the graph plus the pre-trusted peers, summing to 1.

    Pass this node's own id among the pre-trusted peers for a subjective view. With no pre-trusted
    peer at all the jump is uniform (plain PageRank), which offers no Sybil resistance.
    Zero-weight edges and self-trust are ignored. Callers go through ScoreCache so the power
    iteration never runs per message.
    """
    params = params or ScoreParams()
    seeds = sorted(set(pretrusted))
    nodes = sorted(graph.nodes().union(seeds))
    if not nodes:
        return {}
    jump = dict.fromkeys(seeds, 1.0) or None
    # EigenTrust starts the walk at the pre-trusted peers, so ids they cannot reach stay at exactly 0
    raw = pagerank(
        nodes,
        ((e["from"], e["to"], e["weight"]) for e in graph.edges()),
        alpha=params.alpha,
        personalization=jump,
        dangling=jump,
        nstart=jump,
        max_iter=params.max_iter,
        tol=params.tol,
    )
    total = math.fsum(raw.values())
    return {node: raw[node] / total for node in sorted(raw)}


class ScoreCache:
    """Scores recomputed only when the graph or the pre-trusted set changed.

    Callers read scores per message; the cache makes that a version comparison. Recomputation is
    further spaced by params.recompute_interval_s, so a flood of published opinion sets costs one
    PageRank per interval, not one per set.
    """

    def __init__(
        self,
        graph: TrustGraph,
        pretrusted: Iterable[str],
        params: ScoreParams | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.graph = graph
        self.params = params or ScoreParams()
        self._clock = clock
        self._pretrusted = frozenset(pretrusted)
        self._scores: Mapping[str, float] = MappingProxyType({})
        self._graph_version: int | None = None
        self._computed_at: float | None = None
        self._dirty = True
        self._version = 0

    @property
    def version(self) -> int:
        """Increases each time the scores are recomputed; rate limiters key their updates on it."""
        return self._version

    @property
    def pretrusted(self) -> frozenset[str]:
        return self._pretrusted

    def set_pretrusted(self, peers: Iterable[str]) -> None:
        new = frozenset(peers)
        if new != self._pretrusted:
            self._pretrusted = new
            self._dirty = True

    def refresh(self, force: bool = False) -> bool:
        """Recompute if the inputs changed and the interval has passed (or force); returns whether it did."""
        if not self._dirty and self._graph_version == self.graph.version:
            return False
        now = self._clock()
        if (
            not force
            and self._computed_at is not None
            and now - self._computed_at < self.params.recompute_interval_s
        ):
            return False
        graph_version = self.graph.version
        self._scores = MappingProxyType(compute_scores(self.graph, self._pretrusted, self.params))
        self._graph_version = graph_version
        self._computed_at = now
        self._dirty = False
        self._version += 1
        return True

    def scores(self) -> Mapping[str, float]:
        """The current scores (read-only), refreshed first if due."""
        self.refresh()
        return self._scores

    def score(self, peer: str) -> float:
        """One peer's score; an id the graph has never seen scores 0."""
        return self.scores().get(peer, 0.0)
