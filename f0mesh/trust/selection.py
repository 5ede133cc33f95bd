"""Roulette-wheel fanout: pick k distinct peers, each draw proportional to trust.

Gossip forwards to a few peers per message; drawing them by trust (rather than taking the top k)
keeps lower-trust honest peers in the flow while still favouring the trusted ones, and drawing
without replacement never wastes a fanout slot on a peer already chosen.

Weights must be finite and non-negative: a negative or NaN score can only come from a bug
upstream, so it raises ValueError instead of being silently dropped. Zero-weight peers are never
chosen.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable, Mapping
from fractions import Fraction

MAX_EXACT_PEERS = 16


def _positive_weights(scores: Mapping[str, float]) -> list[tuple[str, float]]:
    """Positive-weight peers in sorted-key order, so a seeded rng always gives the same draws."""
    out: list[tuple[str, float]] = []
    for peer in sorted(scores):
        weight = scores[peer]
        if not math.isfinite(weight) or weight < 0:
            raise ValueError(f"score of {peer!r} must be finite and >= 0, got {weight!r}")
        if weight > 0:
            out.append((peer, float(weight)))
    return out


def select_peers(scores: Mapping[str, float], k: int, rng: random.Random) -> list[str]:
    """Sequential weighted sampling without replacement, in draw order.

    Each draw picks one of the remaining peers with probability weight / (sum of remaining
    weights), then removes it. k at or above the number of positive-weight peers returns all of
    them (still in a random, trust-biased order); k <= 0 returns [].
    """
    remaining = _positive_weights(scores)
    chosen: list[str] = []
    while remaining and len(chosen) < k:
        total = math.fsum(w for _, w in remaining)
        target = rng.random() * total
        index = len(remaining) - 1  # rounding can leave target just past the last partial sum
        cumulative = 0.0
        for i, (_, weight) in enumerate(remaining):
            cumulative += weight
            if target < cumulative:
                index = i
                break
        chosen.append(remaining.pop(index)[0])
    return chosen


def inclusion_probabilities(scores: Mapping[str, float], k: int) -> dict[str, float]:
    """Exact probability that select_peers(scores, k, ...) includes each peer.

    Walks every reachable set of already-chosen peers with exact rational arithmetic, so it is
    exponential in the number of peers and meant for tests and analysis of small meshes only
    (at most MAX_EXACT_PEERS positive-weight peers). Zero-weight peers map to 0.0.
    """
    positive = _positive_weights(scores)
    if len(positive) > MAX_EXACT_PEERS:
        raise ValueError(f"exact enumeration is limited to {MAX_EXACT_PEERS} peers, got {len(positive)}")
    result = dict.fromkeys(scores, 0.0)
    draws = min(max(k, 0), len(positive))
    if draws == 0:
        return result
    weights = [Fraction(w) for _, w in positive]
    total = sum(weights, Fraction(0))
    # layer maps a bitmask of chosen peers to (probability of that set, weight still remaining)
    layer: dict[int, tuple[Fraction, Fraction]] = {0: (Fraction(1), total)}
    for _ in range(draws):
        following: dict[int, tuple[Fraction, Fraction]] = {}
        for mask, (prob, left) in layer.items():
            for i, weight in enumerate(weights):
                if mask & (1 << i):
                    continue
                key = mask | (1 << i)
                step = prob * weight / left
                previous = following.get(key)
                following[key] = (step if previous is None else previous[0] + step, left - weight)
        layer = following
    included = [Fraction(0)] * len(positive)
    for mask, (prob, _) in layer.items():
        for i in range(len(positive)):
            if mask & (1 << i):
                included[i] += prob
    result.update((peer, float(p)) for (peer, _), p in zip(positive, included, strict=True))
    return result


def with_floor(scores: Mapping[str, float], peers: Iterable[str], floor: float) -> dict[str, float]:
    """Restrict scores to the candidate peers and mix in a uniform share, like PageRank's teleport.

    weight(p) = (1 - floor) * score(p) / sum(scores of peers) + floor / len(peers)

    A freshly linked honest peer has no trust yet; the floor still gives every candidate at least
    floor / n of a single draw, so it can be chosen and earn trust. A peer missing from scores
    counts as 0; if every candidate scores 0 the result is uniform.
    """
    if not 0.0 <= floor <= 1.0:
        raise ValueError(f"floor must be in [0, 1], got {floor!r}")
    candidates = sorted(set(peers))
    if not candidates:
        return {}
    base = _positive_weights({p: scores.get(p, 0.0) for p in candidates})
    total = math.fsum(w for _, w in base)
    if total == 0:
        return dict.fromkeys(candidates, 1.0 / len(candidates))
    share = dict(base)
    uniform = floor / len(candidates)
    return {p: (1.0 - floor) * share.get(p, 0.0) / total + uniform for p in candidates}
