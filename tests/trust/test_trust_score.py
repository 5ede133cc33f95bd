"""EigenTrust-style PageRank: normalisation, Sybil resistance, and the recompute cache."""

from __future__ import annotations

import subprocess
import sys

import pytest

from f0mesh.trust import ScoreCache, ScoreParams, TrustGraph, compute_scores

SYBILS = [f"sybil{i:02d}" for i in range(20)]


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _honest_mesh() -> TrustGraph:
    """Pre-trusted `seed` trusts h1..h6; h1..h5 vouch for `popular`, only h6 for `lonely`."""
    g = TrustGraph()
    g.apply_published("seed", {f"h{j}": 1.0 for j in range(1, 7)}, 1)
    for i in range(1, 6):
        g.apply_published(f"h{i}", {f"h{i + 1}": 0.5, "popular": 1.0}, 1)
    g.apply_published("h6", {"h1": 0.5, "lonely": 1.0}, 1)
    return g


def _add_sybil_clique(g: TrustGraph) -> None:
    for s in SYBILS:
        g.apply_published(s, {t: 1.0 for t in SYBILS if t != s}, 1)


def test_scores_sum_to_one_over_graph_and_pretrusted() -> None:
    g = _honest_mesh()
    scores = compute_scores(g, {"seed", "offline-seed"})
    assert set(scores) == g.nodes() | {"offline-seed"}
    assert sum(scores.values()) == pytest.approx(1.0, abs=1e-12)
    assert all(v >= 0 for v in scores.values())


def test_empty_graph() -> None:
    assert compute_scores(TrustGraph(), set()) == {}
    assert compute_scores(TrustGraph(), {"me"}) == {"me": pytest.approx(1.0)}


def test_a_sybil_clique_without_attack_edge_gains_less_than_one_honest_peer() -> None:
    g = _honest_mesh()
    _add_sybil_clique(g)
    scores = compute_scores(g, {"seed"})
    sybil_total = sum(scores[s] for s in SYBILS)
    assert scores["h1"] > 0.05
    assert sybil_total < scores["h1"]
    assert sybil_total == 0.0  # no path from the pre-trusted peer: nothing reaches them
    assert sum(scores.values()) == pytest.approx(1.0)


def test_plain_pagerank_would_reward_the_clique() -> None:
    """Why the personalisation matters: without pre-trusted peers the clique wins by numbers."""
    g = _honest_mesh()
    _add_sybil_clique(g)
    scores = compute_scores(g, set())
    assert sum(scores[s] for s in SYBILS) > scores["h1"]


def test_one_attack_edge_gains_at_most_alpha_over_one_minus_alpha_of_its_mass() -> None:
    """Mass entering the clique per step is alpha * score(h6) * c(h6 -> sybil); it leaves at 1 - alpha."""
    g = _honest_mesh()
    _add_sybil_clique(g)
    g.apply_published("h6", {"h1": 0.5, "lonely": 1.0, "sybil00": 0.5}, 3)
    params = ScoreParams(alpha=0.85)
    scores = compute_scores(g, {"seed"}, params)
    sybil_total = sum(scores[s] for s in SYBILS)
    inflow = params.alpha * scores["h6"] * 0.5 / 2.0  # h6's out-weights normalised: 0.5 of 2.0
    assert sybil_total == pytest.approx(inflow / (1 - params.alpha), rel=1e-6)
    smaller = compute_scores(g, {"seed"}, ScoreParams(alpha=0.5))
    assert sum(smaller[s] for s in SYBILS) < sybil_total


def test_trusted_by_many_scores_higher_than_trusted_by_few() -> None:
    scores = compute_scores(_honest_mesh(), {"seed"})
    assert scores["popular"] > 2 * scores["lonely"] > 0


def test_out_weights_are_normalised_per_truster() -> None:
    """Claiming more trust does not hand out more: only the split of each truster's weights counts."""
    a, b = TrustGraph(), TrustGraph()
    a.apply_published("seed", {"x": 1.0, "y": 0.5}, 1)
    b.apply_published("seed", {"x": 0.2, "y": 0.1}, 1)
    sa, sb = compute_scores(a, {"seed"}), compute_scores(b, {"seed"})
    for node in ("seed", "x", "y"):
        assert sa[node] == pytest.approx(sb[node], abs=1e-9)
    assert sa["x"] == pytest.approx(2 * sa["y"])


def test_zero_edges_and_self_trust_are_ignored() -> None:
    g = TrustGraph()
    g.apply_published("seed", {"x": 1.0, "z": 0.0}, 1)
    g.apply_published("x", {"x": 1.0}, 1)
    scores = compute_scores(g, {"seed"})
    assert scores["z"] == pytest.approx(0.0, abs=1e-12)
    # x's only edge is to itself, so it is dangling and hands its mass back to the seed
    assert scores["seed"] > scores["x"]


def test_cache_recomputes_only_when_the_graph_changes() -> None:
    clock = FakeClock()
    g = _honest_mesh()
    cache = ScoreCache(g, {"seed"}, ScoreParams(recompute_interval_s=5.0), clock=clock)
    first = cache.scores()
    assert cache.version == 1 and sum(first.values()) == pytest.approx(1.0)
    for _ in range(100):  # per-message reads
        assert cache.scores() is first
    assert cache.version == 1
    g.apply_published("h6", {"lonely": 1.0, "popular": 1.0}, 9)
    clock.now += 1.0
    assert cache.scores() is first  # changed, but inside the recompute interval
    clock.now += 4.0
    second = cache.scores()
    assert second is not first and cache.version == 2
    assert second["popular"] > first["popular"]
    g.apply_published("h6", {"lonely": 1.0}, 10)
    assert cache.refresh(force=True) and cache.version == 3
    cache.set_pretrusted({"seed", "h1"})
    clock.now += 5.0
    assert cache.score("h1") > second["h1"] and cache.version == 4
    assert cache.score("unknown") == 0.0
    with pytest.raises(TypeError):
        cache.scores()["h1"] = 1.0  # type: ignore[index]


def test_importing_the_package_does_not_import_networkx() -> None:
    code = "import sys, f0mesh.trust; assert 'networkx' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
