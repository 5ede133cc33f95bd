"""The directed, weighted trust graph: who trusts whom, and how much (weights in [0, 1]).

Each truster's out-edges come from exactly one source. A *local* truster (this node, or any id
passed to set_opinion) is edited edge by edge and is authoritative: published sets claiming to be
from it are ignored, so a stale echo of our own opinions can never overwrite them. A *remote*
truster's out-edges arrive as a whole signed set with a version; a newer version replaces the older
set wholesale (a last-writer-wins register per publisher), so removals propagate and replays of old
sets change nothing.

`version` increases only when the effective edges change, so score computation can be skipped
whenever it has not moved.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

DEFAULT_MAX_OUT_EDGES = 1000


def _check_weight(frm: str, to: str, weight: float) -> float:
    if isinstance(weight, bool) or not isinstance(weight, int | float) or not math.isfinite(weight):
        raise ValueError(f"trust weight {frm!r} -> {to!r} must be a finite number, got {weight!r}")
    if not 0.0 <= weight <= 1.0:
        raise ValueError(f"trust weight {frm!r} -> {to!r} must be in [0, 1], got {weight!r}")
    return float(weight)


def _check_id(peer: str) -> str:
    if not isinstance(peer, str) or not peer:
        raise ValueError(f"peer id must be a non-empty string, got {peer!r}")
    return peer


class TrustGraph:
    """Trust edges from local opinions and from other peers' published opinion sets."""

    def __init__(self, max_out_edges: int = DEFAULT_MAX_OUT_EDGES) -> None:
        if max_out_edges < 1:
            raise ValueError(f"max_out_edges must be >= 1, got {max_out_edges!r}")
        self.max_out_edges = max_out_edges
        self._out: dict[str, dict[str, float]] = {}
        self._local: set[str] = set()
        self._published_version: dict[str, int] = {}
        self._version = 0

    @property
    def version(self) -> int:
        """Increases on every change of the effective edges; compare to skip recomputation."""
        return self._version

    def set_opinion(self, frm: str, to: str, weight: float) -> bool:
        """Set a local truster's edge; returns whether anything changed."""
        _check_id(frm)
        _check_id(to)
        weight = _check_weight(frm, to, weight)
        self._make_local(frm)
        edges = self._out.setdefault(frm, {})
        if edges.get(to) == weight:
            return False
        if to not in edges and len(edges) >= self.max_out_edges:
            raise ValueError(f"{frm!r} already has the maximum of {self.max_out_edges} trust edges")
        edges[to] = weight
        self._version += 1
        return True

    def remove_opinion(self, frm: str, to: str) -> bool:
        """Drop a local truster's edge (no opinion, unlike weight 0 which is an explicit distrust)."""
        if frm not in self._local:
            return False
        edges = self._out.get(frm, {})
        if to not in edges:
            return False
        del edges[to]
        if not edges:
            del self._out[frm]
        self._version += 1
        return True

    def apply_published(self, frm: str, edges: Mapping[str, float], version: int) -> bool:
        """Replace a remote truster's out-edges if `version` is newer than the one held.

        Returns whether the set was accepted. An invalid set raises ValueError and changes nothing,
        so the caller can reject the message that carried it.
        """
        _check_id(frm)
        if isinstance(version, bool) or not isinstance(version, int) or version < 0:
            raise ValueError(f"published version must be an int >= 0, got {version!r}")
        if len(edges) > self.max_out_edges:
            raise ValueError(f"{frm!r} published {len(edges)} trust edges, the limit is {self.max_out_edges}")
        checked = {_check_id(to): _check_weight(frm, to, w) for to, w in edges.items()}
        if frm in self._local or version <= self._published_version.get(frm, -1):
            return False
        self._published_version[frm] = version
        if self._out.get(frm, {}) != checked:
            if checked:
                self._out[frm] = checked
            else:
                self._out.pop(frm, None)
            self._version += 1
        return True

    def publishers(self) -> list[str]:
        """The remote trusters whose published sets are held, in the order first applied."""
        return list(self._published_version)

    def forget_published(self, frm: str) -> bool:
        """Drop a remote truster's set (and its version, so a later set of it is taken afresh)."""
        if self._published_version.pop(frm, None) is None:
            return False
        if self._out.pop(frm, None) is not None:
            self._version += 1
        return True

    def published_version(self, frm: str) -> int | None:
        """The version of the set held for a remote truster, None if none was applied."""
        return self._published_version.get(frm)

    def out_edges(self, frm: str) -> dict[str, float]:
        """A copy of one truster's edges; for a local truster, what it publishes."""
        return dict(self._out.get(frm, {}))

    def edges(self) -> list[dict[str, Any]]:
        """Every edge, sorted by (from, to), in the shape of GET /api/trust."""
        return [
            {"from": frm, "to": to, "weight": w}
            for frm in sorted(self._out)
            for to, w in sorted(self._out[frm].items())
        ]

    def nodes(self) -> set[str]:
        """Every id that trusts or is trusted."""
        found = set(self._out)
        for edges in self._out.values():
            found.update(edges)
        return found

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready snapshot, so the graph survives a restart without waiting for republication."""
        return {
            "local": {frm: dict(self._out.get(frm, {})) for frm in sorted(self._local)},
            "published": {
                frm: {"version": v, "edges": dict(self._out.get(frm, {}))}
                for frm, v in sorted(self._published_version.items())
            },
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], max_out_edges: int = DEFAULT_MAX_OUT_EDGES) -> TrustGraph:
        """Rebuild from to_dict(); malformed data raises ValueError."""
        graph = cls(max_out_edges)
        try:
            local = data.get("local", {})
            published = data.get("published", {})
            for frm, edges in local.items():
                graph._make_local(_check_id(frm))
                for to, weight in edges.items():
                    graph.set_opinion(frm, to, weight)
            for frm, entry in published.items():
                graph.apply_published(frm, entry["edges"], entry["version"])
        except (AttributeError, KeyError, TypeError) as exc:
            raise ValueError(f"not a trust graph snapshot: {exc}") from exc
        return graph

    def _make_local(self, frm: str) -> None:
        """A truster that becomes local stops listening to published sets in its name.

        Edges already held for it are kept and from then on edited locally.
        """
        if frm not in self._local:
            self._local.add(frm)
            self._published_version.pop(frm, None)
