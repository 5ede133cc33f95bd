"""TrustGraph: local opinions, versioned published sets, and the change counter."""

from __future__ import annotations

import math

import pytest

from f0mesh.trust import TrustGraph


def test_local_opinions_and_version() -> None:
    g = TrustGraph()
    assert g.version == 0 and g.edges() == []
    assert g.set_opinion("me", "b", 0.5)
    assert g.set_opinion("me", "a", 1.0)
    v = g.version
    assert not g.set_opinion("me", "a", 1.0)  # same value: no change, no recompute
    assert g.version == v
    assert g.edges() == [
        {"from": "me", "to": "a", "weight": 1.0},
        {"from": "me", "to": "b", "weight": 0.5},
    ]
    assert g.set_opinion("me", "a", 0.0)  # explicit distrust is kept as an edge
    assert g.out_edges("me") == {"a": 0.0, "b": 0.5}
    assert g.remove_opinion("me", "a")
    assert not g.remove_opinion("me", "a")
    assert g.version == v + 2
    assert g.nodes() == {"me", "b"}


@pytest.mark.parametrize("bad", [-0.01, 1.01, math.nan, math.inf, True, "0.5", None])
def test_bad_weights_are_refused(bad: object) -> None:
    g = TrustGraph()
    with pytest.raises(ValueError):
        g.set_opinion("me", "a", bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        g.apply_published("x", {"a": 0.5, "b": bad}, 1)  # type: ignore[dict-item]
    assert g.edges() == [] and g.version == 0
    assert g.published_version("x") is None


def test_newer_published_version_replaces_the_whole_set() -> None:
    g = TrustGraph()
    assert g.apply_published("x", {"a": 0.5, "b": 1.0}, 3)
    v = g.version
    assert not g.apply_published("x", {"c": 1.0}, 2)  # older: a replay changes nothing
    assert not g.apply_published("x", {"c": 1.0}, 3)  # same version: first one wins
    assert g.version == v and g.out_edges("x") == {"a": 0.5, "b": 1.0}
    assert g.apply_published("x", {"b": 0.25}, 7)  # a is removed, not merged
    assert g.out_edges("x") == {"b": 0.25} and g.published_version("x") == 7
    assert g.version == v + 1
    assert g.apply_published("x", {"b": 0.25}, 8)  # accepted, but the edges did not move
    assert g.version == v + 1 and g.published_version("x") == 8
    assert g.apply_published("x", {}, 9)
    assert g.out_edges("x") == {} and "x" not in g.nodes()


def test_published_sets_in_a_local_trusters_name_are_ignored() -> None:
    g = TrustGraph()
    g.set_opinion("me", "a", 0.8)
    assert not g.apply_published("me", {"evil": 1.0}, 10**9)
    assert g.out_edges("me") == {"a": 0.8}


def test_edge_count_per_truster_is_bounded() -> None:
    g = TrustGraph(max_out_edges=3)
    with pytest.raises(ValueError, match="limit"):
        g.apply_published("x", {f"p{i}": 1.0 for i in range(4)}, 1)
    for i in range(3):
        g.set_opinion("me", f"p{i}", 1.0)
    with pytest.raises(ValueError, match="maximum"):
        g.set_opinion("me", "p3", 1.0)
    g.set_opinion("me", "p0", 0.5)  # updating an existing edge is fine


def test_snapshot_round_trip() -> None:
    g = TrustGraph()
    g.set_opinion("me", "a", 0.8)
    g.apply_published("x", {"a": 0.5, "me": 1.0}, 4)
    restored = TrustGraph.from_dict(g.to_dict())
    assert restored.edges() == g.edges()
    assert restored.published_version("x") == 4
    assert not restored.apply_published("x", {}, 4)
    assert not restored.apply_published("me", {"z": 1.0}, 1)
    with pytest.raises(ValueError):
        TrustGraph.from_dict({"published": {"x": {"edges": {}}}})
