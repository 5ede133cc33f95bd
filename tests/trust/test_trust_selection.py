"""Roulette-wheel selection: frequencies match exactly computed inclusion probabilities."""

from __future__ import annotations

import math
import random
from collections import Counter
from itertools import permutations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from f0mesh.trust import inclusion_probabilities, select_peers, with_floor

SCORES = {
    "p1": 0.40,
    "p2": 0.22,
    "p3": 0.13,
    "p4": 0.09,
    "p5": 0.07,
    "p6": 0.05,
    "p7": 0.03,
    "p8": 0.01,
    "zero": 0.0,
}
DRAWS = 100_000


def _brute_force_inclusion(scores: dict[str, float], k: int) -> dict[str, float]:
    """Independent check of inclusion_probabilities: sum over every ordered draw sequence."""
    positive = {p: w for p, w in scores.items() if w > 0}
    k = min(k, len(positive))
    result = dict.fromkeys(scores, 0.0)
    for order in permutations(positive, k):
        prob, left = 1.0, sum(positive.values())
        for peer in order:
            prob *= positive[peer] / left
            left -= positive[peer]
        for peer in order:
            result[peer] += prob
    return result


def test_inclusion_probabilities_match_brute_force() -> None:
    for k in (1, 2, 3, 5):
        exact = inclusion_probabilities(SCORES, k)
        brute = _brute_force_inclusion(SCORES, k)
        assert exact.keys() == SCORES.keys()
        for peer in SCORES:
            assert exact[peer] == pytest.approx(brute[peer], abs=1e-12)
        assert sum(exact.values()) == pytest.approx(k)


def test_inclusion_probabilities_are_not_proportional_for_k_above_one() -> None:
    """Guards the test below against a degenerate check: for k=3 the naive k*w/sum is wrong."""
    exact = inclusion_probabilities(SCORES, 3)
    total = sum(SCORES.values())
    assert exact["p1"] < 3 * SCORES["p1"] / total - 0.1
    assert exact["p8"] > 3 * SCORES["p8"] / total


def test_k3_frequencies_match_exact_inclusion_probabilities() -> None:
    rng = random.Random(20240601)
    counts: Counter[str] = Counter()
    for _ in range(DRAWS):
        chosen = select_peers(SCORES, 3, rng)
        assert len(chosen) == 3
        assert len(set(chosen)) == 3
        counts.update(chosen)
    assert counts["zero"] == 0
    exact = inclusion_probabilities(SCORES, 3)
    for peer, prob in exact.items():
        assert abs(counts[peer] / DRAWS - prob) < 0.01, (peer, counts[peer] / DRAWS, prob)


def test_k1_frequency_is_score_over_sum() -> None:
    rng = random.Random(7)
    counts = Counter(select_peers(SCORES, 1, rng)[0] for _ in range(DRAWS))
    total = sum(SCORES.values())
    for peer, weight in SCORES.items():
        assert abs(counts[peer] / DRAWS - weight / total) < 0.01, peer


def test_same_seed_same_draws_whatever_the_dict_order() -> None:
    reordered = dict(reversed(list(SCORES.items())))
    a, b = random.Random(99), random.Random(99)
    assert [select_peers(SCORES, 3, a) for _ in range(200)] == [
        select_peers(reordered, 3, b) for _ in range(200)
    ]


def test_small_and_large_k() -> None:
    rng = random.Random(1)
    assert select_peers(SCORES, 0, rng) == []
    assert select_peers(SCORES, -2, rng) == []
    everyone = select_peers(SCORES, 50, rng)
    assert sorted(everyone) == sorted(p for p, w in SCORES.items() if w > 0)
    assert select_peers({}, 3, rng) == []
    assert select_peers({"a": 0.0, "b": 0.0}, 3, rng) == []
    assert inclusion_probabilities(SCORES, 0) == dict.fromkeys(SCORES, 0.0)
    assert inclusion_probabilities(SCORES, 20)["p8"] == pytest.approx(1.0)


@pytest.mark.parametrize("bad", [-0.1, math.nan, math.inf])
def test_negative_or_non_finite_scores_are_refused(bad: float) -> None:
    with pytest.raises(ValueError, match="finite and >= 0"):
        select_peers({"a": 1.0, "b": bad}, 1, random.Random(0))


def test_exact_enumeration_is_bounded() -> None:
    with pytest.raises(ValueError, match="limited"):
        inclusion_probabilities({f"p{i}": 1.0 for i in range(17)}, 2)


@settings(max_examples=200, deadline=None)
@given(
    scores=st.dictionaries(
        st.text(min_size=1, max_size=4),
        st.one_of(st.just(0.0), st.floats(min_value=1e-6, max_value=1e6)),
        max_size=12,
    ),
    k=st.integers(min_value=-1, max_value=15),
    seed=st.integers(min_value=0, max_value=2**32),
)
def test_selection_properties(scores: dict[str, float], k: int, seed: int) -> None:
    chosen = select_peers(scores, k, random.Random(seed))
    positive = {p for p, w in scores.items() if w > 0}
    assert len(chosen) == len(set(chosen)) == min(max(k, 0), len(positive))
    assert set(chosen) <= positive


def test_with_floor_gives_every_candidate_a_chance() -> None:
    scores = {"old": 0.9, "mid": 0.1, "stranger": 0.5}
    mixed = with_floor(scores, ["old", "mid", "new"], 0.1)
    assert set(mixed) == {"old", "mid", "new"}  # not linked => not a candidate
    assert sum(mixed.values()) == pytest.approx(1.0)
    assert mixed["new"] == pytest.approx(0.1 / 3)
    assert mixed["old"] == pytest.approx(0.9 * 0.9 + 0.1 / 3)
    assert mixed["old"] / mixed["mid"] > 5  # trust still dominates
    rng = random.Random(3)
    hits = sum("new" in select_peers(mixed, 1, rng) for _ in range(20_000))
    assert abs(hits / 20_000 - mixed["new"]) < 0.01


def test_with_floor_edge_cases() -> None:
    assert with_floor({"a": 1.0}, [], 0.1) == {}
    assert with_floor({}, ["a", "b"], 0.0) == {"a": 0.5, "b": 0.5}
    assert with_floor({"a": 2.0, "b": 0.0}, ["a", "b"], 0.0) == {"a": 1.0, "b": 0.0}
    with pytest.raises(ValueError):
        with_floor({"a": 1.0}, ["a"], 1.5)
