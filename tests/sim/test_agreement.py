"""The simulator against the engine's in-process network on a real event loop, same topology.

MemoryNetwork adds no delay, so the simulated side runs without latency too; with the five-region
latency model first copies take faster, longer paths (see docs/scale.md), which is the model's
point, not a disagreement.
"""

from __future__ import annotations

import pytest

from f0mesh.sim.validate import compare, max_quantile_gap


@pytest.mark.parametrize("seed", [1, 2])
def test_same_topology_same_delivery_and_hop_distribution_within_one_hop(seed: int) -> None:
    result = compare(n=60, seed=seed, origins=6)
    assert result["all_delivered"]
    assert max_quantile_gap(result) <= 1
    means = result["pooled_mean_hops"]
    assert abs(means["memory"] - means["sim"]) <= 0.5
