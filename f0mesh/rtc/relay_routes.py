"""Which neighbours lead towards a peer, read from the link summaries the mesh gossips (telemetry).

A relayed offer for a peer this node has no link to goes to the neighbour closest to it. The map is
the undirected graph of the links every summary lists; summaries are hostile input (a liar can only
attract offers it then drops, and the dialler tries the next relay), so the graph is bounded in
origins and links per origin, rebuilt at most once per ``REBUILD_S`` however many offers ask, and
each search stops at the first depth that reaches a neighbour.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Collection, Iterable, Mapping
from typing import Any

MAX_SUMMARIES = 1024
MAX_LINKS_PER_SUMMARY = 64  # a node holds at most --max-links (64) links
REBUILD_S = 1.0
MAX_SCANNED = 8192  # links one search looks at (~1 ms): a liar's telemetry can make the graph dense


class RouteMap:
    def __init__(
        self, summaries: Mapping[str, dict[str, Any]], clock: Callable[[], float] = time.monotonic
    ) -> None:
        """``summaries``: origin -> its last telemetry summary (``{"links": [{"peer_id": ...}]}``)."""
        self._summaries = summaries
        self._clock = clock
        self._graph: dict[str, set[str]] = {}
        self._built = -REBUILD_S

    def _links(self) -> dict[str, set[str]]:
        now = self._clock()
        if now - self._built < REBUILD_S:
            return self._graph
        graph: dict[str, set[str]] = {}
        for origin, summary in list(self._summaries.items())[:MAX_SUMMARIES]:
            links = summary.get("links") if isinstance(summary, dict) else None
            if not isinstance(links, list):
                continue
            for link in links[:MAX_LINKS_PER_SUMMARY]:
                peer = link.get("peer_id") if isinstance(link, dict) else None
                if isinstance(peer, str) and peer != origin:
                    graph.setdefault(origin, set()).add(peer)
                    graph.setdefault(peer, set()).add(origin)
        self._graph, self._built = graph, now
        return graph

    def nearest(
        self, target: str, named: Iterable[str], limit: int, among: Collection[str]
    ) -> dict[str, int]:
        """Those of ``among`` (this node's neighbours) that are fewest links from ``target``, within
        ``limit``, with that count; ``named`` are the relays the target's own signed record names (one
        link away). The search stops at the first depth that reaches one, or after ``MAX_SCANNED`` links."""
        graph = self._links()
        seen = {target}
        frontier = [target]
        budget = MAX_SCANNED
        for depth in range(1, limit + 1):
            links = (peer for node in frontier for peer in graph.get(node, ()))
            found = [*(named if depth == 1 else ()), *itertools.islice(links, budget)]
            budget -= len(found)
            frontier = [peer for peer in dict.fromkeys(found) if peer not in seen]
            seen.update(frontier)
            reached = {peer: depth for peer in frontier if peer in among}
            if reached or not frontier or budget <= 0:
                return reached
        return {}
