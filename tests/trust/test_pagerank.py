"""The plain-Python power iteration against networkx.pagerank, which stays a test dependency."""

from __future__ import annotations

import networkx as nx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from f0mesh.trust.pagerank import pagerank

NAMES = [f"p{i}" for i in range(25)]


@st.composite
def graphs(draw: st.DrawFn) -> tuple[list[str], dict[tuple[str, str], float]]:
    nodes = draw(st.lists(st.sampled_from(NAMES), min_size=1, max_size=len(NAMES), unique=True))
    pairs = [(a, b) for a in nodes for b in nodes if a != b]
    chosen = draw(st.lists(st.sampled_from(pairs), unique=True, max_size=80)) if pairs else []
    weights = st.one_of(st.just(0.0), st.floats(0.01, 1.0), st.just(1.0))
    return nodes, {pair: draw(weights) for pair in chosen}


def _subset(nodes: list[str]) -> st.SearchStrategy[dict[str, float] | None]:
    return st.one_of(st.none(), st.dictionaries(st.sampled_from(nodes), st.floats(0.1, 5.0), min_size=1))


def _nx(nodes, edges, **kwargs) -> dict[str, float]:
    g = nx.DiGraph()
    g.add_nodes_from(nodes)
    g.add_weighted_edges_from((a, b, w) for (a, b), w in edges.items())
    return nx.pagerank(g, weight="weight", **kwargs)


@settings(max_examples=200, deadline=None)
@given(data=st.data(), graph=graphs(), alpha=st.floats(0.05, 0.95))
def test_equals_networkx_on_random_graphs(data: st.DataObject, graph, alpha: float) -> None:
    nodes, edges = graph
    personalization = data.draw(_subset(nodes))
    dangling = data.draw(_subset(nodes)) if personalization is not None else None
    nstart = data.draw(_subset(nodes))
    kwargs = {
        "alpha": alpha,
        "personalization": personalization,
        "dangling": dangling,
        "nstart": nstart,
        "max_iter": 10_000,
        "tol": 1e-13,
    }
    ours = pagerank(nodes, ((a, b, w) for (a, b), w in edges.items()), **kwargs)
    theirs = _nx(nodes, edges, **kwargs)
    assert ours.keys() == theirs.keys()
    for node in nodes:
        assert ours[node] == pytest.approx(theirs[node], abs=1e-9), node
    assert sum(ours.values()) == pytest.approx(1.0, abs=1e-9)


def test_unreached_nodes_stay_exactly_zero_and_dangling_mass_goes_to_the_seed() -> None:
    edges = [("seed", "a", 1.0), ("x", "y", 1.0), ("y", "x", 1.0)]
    scores = pagerank(
        ["seed", "a", "x", "y"], edges, personalization={"seed": 1}, nstart={"seed": 1}, tol=1e-12
    )
    assert scores["x"] == 0.0 and scores["y"] == 0.0
    # a is dangling: the walk is seed -> a -> seed, a holds alpha of what seed holds
    assert scores["a"] == pytest.approx(0.85 * scores["seed"])


def test_self_loops_zero_weights_and_strangers_are_ignored() -> None:
    plain = pagerank(["s", "a"], [("s", "a", 1.0)], personalization={"s": 1})
    noisy = pagerank(
        ["s", "a"],
        [("s", "a", 1.0), ("s", "s", 1.0), ("a", "s", 0.0), ("a", "ghost", 1.0)],
        personalization={"s": 1},
    )
    assert noisy == pytest.approx(plain)


def test_iteration_limit_returns_a_distribution(caplog: pytest.LogCaptureFixture) -> None:
    nodes = [f"n{i}" for i in range(10)]
    ring = [(nodes[i], nodes[(i + 1) % 10], 1.0) for i in range(10)]
    scores = pagerank(nodes, ring, personalization={"n0": 1}, nstart={"n0": 1}, max_iter=2, tol=1e-15)
    assert sum(scores.values()) == pytest.approx(1.0) and scores["n5"] == 0.0
    assert "did not converge in 2 iterations" in caplog.text
    assert pagerank([], []) == {}
