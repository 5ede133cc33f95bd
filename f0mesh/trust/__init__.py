"""Trust: the trust graph, EigenTrust scores, behaviour feedback, roulette fanout, rate limits.

Nothing here imports networkx or scipy: scores come from trust.pagerank, in plain Python.
"""

from f0mesh.trust.behaviour import Event, PeerScore, own_edge_weight, sync_own_edges
from f0mesh.trust.graph import TrustGraph
from f0mesh.trust.rate_limit import RateLimiter, TokenBucket, rate_for_trust
from f0mesh.trust.score import ScoreCache, compute_scores
from f0mesh.trust.score_params import BehaviourParams, RateParams, ScoreParams, TrustParams
from f0mesh.trust.selection import inclusion_probabilities, select_peers, with_floor
from f0mesh.trust.service import TrustService

__all__ = [
    "BehaviourParams",
    "Event",
    "PeerScore",
    "RateLimiter",
    "RateParams",
    "ScoreCache",
    "ScoreParams",
    "TokenBucket",
    "TrustGraph",
    "TrustParams",
    "TrustService",
    "compute_scores",
    "inclusion_probabilities",
    "own_edge_weight",
    "rate_for_trust",
    "select_peers",
    "sync_own_edges",
    "with_floor",
]
