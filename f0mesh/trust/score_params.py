"""Tunable numbers of the trust layer, kept apart from the mechanism (as go-libp2p-pubsub does).

Every class validates itself on construction, so a bad configuration fails at start-up with a
message naming the field instead of producing odd scores later.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)


def _finite(value: float) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


@dataclass(frozen=True, slots=True)
class ScoreParams:
    """Global scores: PageRank personalised to the pre-trusted peers (EigenTrust).

    alpha is PageRank's damping factor, the probability of following a trust edge. EigenTrust's
    a (Kamvar et al. 2003), the probability of jumping back to a pre-trusted peer, is 1 - alpha;
    the paper's a = 0.1-0.2 corresponds to alpha = 0.8-0.9. A lower alpha pulls scores harder
    towards the pre-trusted peers and caps what a Sybil region can gain through one attack edge
    (at most alpha / (1 - alpha) times the mass that edge carries).
    """

    alpha: float = 0.85
    max_iter: int = 1000
    tol: float = 1e-10
    recompute_interval_s: float = 5.0  # floor between recomputations, so a burst of graph updates costs one

    def __post_init__(self) -> None:
        _require(
            _finite(self.alpha) and 0.0 < self.alpha < 1.0, f"alpha must be in (0, 1), got {self.alpha!r}"
        )
        _require(self.max_iter >= 1, f"max_iter must be >= 1, got {self.max_iter!r}")
        _require(_finite(self.tol) and self.tol > 0, f"tol must be > 0, got {self.tol!r}")
        _require(
            _finite(self.recompute_interval_s) and self.recompute_interval_s >= 0,
            f"recompute_interval_s must be >= 0, got {self.recompute_interval_s!r}",
        )


@dataclass(frozen=True, slots=True)
class BehaviourParams:
    """Behaviour feedback in the spirit of the GossipSub v1.1 peer score.

    behaviour = clamp(max_reward * min(first_deliveries, cap) / cap - sum(weight_e * count_e ** 2), -1, 1)

    Rewards are small and capped so good service cannot outweigh an operator's opinion; penalties
    are squared (GossipSub P4) so an occasional fault is forgiven while sustained abuse drives the
    peer to -1 quickly. Counters decay exponentially towards 0, penalties more slowly than rewards.
    """

    max_reward: float = 0.2
    first_delivery_cap: float = 100.0
    invalid_signature_weight: float = 0.5
    replay_weight: float = 0.05
    rate_limited_weight: float = 0.01
    malformed_weight: float = 0.25
    penalty_cap: float = 1000.0  # bounds how long one outburst is remembered
    reward_half_life_s: float = 600.0
    penalty_half_life_s: float = 3600.0
    decay_to_zero: float = 0.01  # a counter below this is dropped, so idle peers are forgotten
    default_opinion: float = 0.0  # edge weight base when the operator expressed no opinion
    edge_decimals: int = 2  # own edge weights are rounded so decay does not churn the graph version
    max_peers: int = 10_000

    def __post_init__(self) -> None:
        for name in (
            "max_reward",
            "invalid_signature_weight",
            "replay_weight",
            "rate_limited_weight",
            "malformed_weight",
        ):
            value = getattr(self, name)
            _require(_finite(value) and value >= 0, f"{name} must be >= 0, got {value!r}")
        _require(self.max_reward <= 1.0, f"max_reward must be <= 1, got {self.max_reward!r}")
        for name in (
            "first_delivery_cap",
            "penalty_cap",
            "reward_half_life_s",
            "penalty_half_life_s",
            "decay_to_zero",
        ):
            value = getattr(self, name)
            _require(_finite(value) and value > 0, f"{name} must be > 0, got {value!r}")
        _require(
            _finite(self.default_opinion) and 0.0 <= self.default_opinion <= 1.0,
            f"default_opinion must be in [0, 1], got {self.default_opinion!r}",
        )
        _require(0 <= self.edge_decimals <= 12, f"edge_decimals must be in 0..12, got {self.edge_decimals!r}")
        _require(self.max_peers >= 1, f"max_peers must be >= 1, got {self.max_peers!r}")


@dataclass(frozen=True, slots=True)
class RateParams:
    """Token-bucket limits as a function of trust.

    relative = trust * n_peers   (1.0 = the uniform share 1/n)
    rate     = clamp(base_rate  * relative, min_rate,  max_rate)    messages per second
    burst    = clamp(base_burst * relative, min_burst, max_burst)   messages

    min_burst lets even an untrusted, freshly linked peer send a normal start-up exchange;
    max_rate keeps a highly trusted (or compromised) peer from flooding.
    """

    base_rate: float = 10.0
    min_rate: float = 1.0
    max_rate: float = 200.0
    base_burst: float = 100.0
    min_burst: float = 50.0
    max_burst: float = 1000.0
    max_buckets: int = 4096

    def __post_init__(self) -> None:
        for name in ("base_rate", "min_rate", "base_burst", "min_burst"):
            value = getattr(self, name)
            _require(_finite(value) and value >= 0, f"{name} must be >= 0, got {value!r}")
        _require(self.min_burst >= 1, f"min_burst must be >= 1, got {self.min_burst!r}")
        _require(
            _finite(self.max_rate) and self.max_rate >= self.min_rate,
            f"max_rate must be >= min_rate, got {self.max_rate!r}",
        )
        _require(
            _finite(self.max_burst) and self.max_burst >= self.min_burst,
            f"max_burst must be >= min_burst, got {self.max_burst!r}",
        )
        _require(self.max_buckets >= 1, f"max_buckets must be >= 1, got {self.max_buckets!r}")


def _neighbour_rate() -> RateParams:
    """A neighbour relays everyone's messages, so its limits sit well above one origin's."""
    return RateParams(base_rate=50.0, min_rate=10.0, max_rate=1000.0, base_burst=500.0, max_burst=5000.0)


@dataclass(frozen=True, slots=True)
class TrustParams:
    """Everything the trust layer needs, in one object for the node to carry."""

    score: ScoreParams = field(default_factory=ScoreParams)
    behaviour: BehaviourParams = field(default_factory=BehaviourParams)
    origin_rate: RateParams = field(default_factory=RateParams)
    neighbour_rate: RateParams = field(default_factory=_neighbour_rate)
    # Behaviour moves a node's opinions a little with every delivery; gossiping each rounding step
    # made opinions most of a quiet mesh's traffic. Observed drift is published once it moves an edge
    # by publish_min_change, and no more often than publish_min_interval_s; an operator's opinion at once.
    publish_min_change: float = 0.1
    publish_min_interval_s: float = 30.0
    # Other peers' published opinions are kept per origin, and origins are free to mint: at most this
    # many publishers and edges in all; past either the least trusted publisher goes (#20: 40 invented
    # origins once planted 40,000 edges)
    max_publishers: int = 1000
    max_remote_edges: int = 20_000

    def __post_init__(self) -> None:
        _require(
            _finite(self.publish_min_change) and 0 <= self.publish_min_change <= 1,
            f"publish_min_change must be in [0, 1], got {self.publish_min_change!r}",
        )
        _require(
            _finite(self.publish_min_interval_s) and self.publish_min_interval_s >= 0,
            f"publish_min_interval_s must be >= 0, got {self.publish_min_interval_s!r}",
        )
        _require(self.max_publishers >= 1, f"max_publishers must be >= 1, got {self.max_publishers!r}")
        _require(self.max_remote_edges >= 1, f"max_remote_edges must be >= 1, got {self.max_remote_edges!r}")
