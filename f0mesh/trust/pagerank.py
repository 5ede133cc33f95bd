"""Personalised PageRank by power iteration in plain Python.

A node's trust graph is small (hundreds to a few thousand peers, at most max_out_edges per
truster), so adjacency lists beat importing scipy and networkx (~30 MB of RSS, a quarter of a
second) into every node. The iteration is networkx.pagerank's, and tests check it against it:

    x' = alpha * (x W + (sum of x over dangling nodes) * d) + (1 - alpha) * p

with W the row-normalised weights, p the personalisation (the jump) and d the dangling
distribution, and it stops once sum |x' - x| < n * tol, or after max_iter rounds.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping

log = logging.getLogger(__name__)


def _distribution(weights: Mapping[str, float] | None, index: Mapping[str, int], n: int) -> list[float]:
    """A probability vector over the nodes; uniform when weights is None or sums to nothing."""
    vector = [0.0] * n
    if weights:
        for node, w in weights.items():
            if node in index and w > 0:
                vector[index[node]] += w
    total = math.fsum(vector)
    if total <= 0:
        return [1.0 / n] * n
    return [v / total for v in vector]


def pagerank(
    nodes: Iterable[str],
    edges: Iterable[tuple[str, str, float]],
    *,
    alpha: float = 0.85,
    personalization: Mapping[str, float] | None = None,
    dangling: Mapping[str, float] | None = None,
    nstart: Mapping[str, float] | None = None,
    max_iter: int = 100,
    tol: float = 1.0e-6,
) -> dict[str, float]:
    """Scores summing to 1, keyed by node; arguments mean what they mean to networkx.pagerank.

    Edges with a weight <= 0, self-loops and edges naming unknown nodes are left out (a trust graph
    has no use for them), parallel edges add up. ``dangling`` defaults to ``personalization``.
    Unlike networkx, running out of iterations returns the last iterate (still a distribution)
    with a warning instead of raising: a node keeps slightly stale scores rather than none.
    """
    order = list(dict.fromkeys(nodes))
    n = len(order)
    if n == 0:
        return {}
    index = {node: i for i, node in enumerate(order)}
    out: list[dict[int, float]] = [{} for _ in range(n)]
    for frm, to, weight in edges:
        i, j = index.get(frm), index.get(to)
        if i is None or j is None or i == j or not weight > 0:
            continue
        out[i][j] = out[i].get(j, 0.0) + weight
    rows: list[list[tuple[int, float]]] = []
    for targets in out:
        total = math.fsum(targets.values())
        rows.append([(j, w / total) for j, w in targets.items()])
    dangling_nodes = [i for i, row in enumerate(rows) if not row]
    jump = _distribution(personalization, index, n)
    spill = jump if dangling is None else _distribution(dangling, index, n)
    jump_nz = [(j, p) for j, p in enumerate(jump) if p]
    spill_nz = [(j, p) for j, p in enumerate(spill) if p]
    x = _distribution(nstart, index, n)
    for _ in range(max_iter):
        lost = alpha * math.fsum(x[i] for i in dangling_nodes)
        new = [0.0] * n
        for i, row in enumerate(rows):
            mass = alpha * x[i]
            if mass:
                for j, w in row:
                    new[j] += mass * w
        for j, p in spill_nz:
            new[j] += lost * p
        for j, p in jump_nz:
            new[j] += (1.0 - alpha) * p
        err = math.fsum(abs(a - b) for a, b in zip(new, x, strict=True))
        x = new
        if err < n * tol:
            break
    else:
        log.warning(
            "PageRank did not converge in %d iterations (tol %g); using the last iterate", max_iter, tol
        )
    return dict(zip(order, x, strict=True))
