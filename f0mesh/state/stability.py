"""When a list's tombstones may go: causal stability, from the versions its writers report.

Anti-entropy already carries each neighbour's version of every document. A list's ops come only from the
writers its policy names, so once every writer reported a version, their pointwise minimum (the floor) is
a version every writer has reached. That is not yet enough to reshape the list: a writer may have inserted
after a now-deleted element just before it saw the delete, and that insert may still be on its way. So a
floor is used one pass later, once this replica holds every op each writer had made when it reported (the
frontier): from then on every op still to come was made by a writer that had seen the whole floor, so it
anchors on no collected element and its id is greater than every id within the floor (RGA.collect).

Only a writer's own report counts (a version relayed by others could be stale or invented), so a list is
collected only by replicas linked to all its writers; a writer that never reports again holds collection
back, which costs size, never correctness.
"""

from __future__ import annotations

from collections.abc import Iterable

from f0mesh.crdt import VectorClock

MAX_REPORTS = 4096  # (peer, list) versions kept; past this, reports of new pairs are ignored


def floor(versions: Iterable[VectorClock]) -> VectorClock:
    """Pointwise minimum: what every one of these versions has reached."""
    versions = list(versions)
    origins = set().union(*(v.nodes() for v in versions)) if versions else set()
    return VectorClock({o: min(v.get(o) for v in versions) for o in origins})


class Stability:
    def __init__(self) -> None:
        self._reports: dict[tuple[str, str], VectorClock] = {}  # (writer, list name) -> its own version
        # name -> (writers, floor, frontier) of the last pass
        self._pending: dict[str, tuple[frozenset[str], VectorClock, VectorClock]] = {}

    def heard(self, peer_id: str, name: str, version: VectorClock) -> None:
        """A writer's own version of a list, from its versions message (versions only grow)."""
        key = (peer_id, name)
        held = self._reports.get(key)
        if held is None:
            if len(self._reports) >= MAX_REPORTS:
                return
            self._reports[key] = held = VectorClock()
        held.merge(version)

    def stable(self, name: str, me: str, own: VectorClock, writers: frozenset[str]) -> VectorClock | None:
        """The version to collect the list at now, or None; call once per collection pass. A writer named
        since the last pass starts over: it may have anchored on what the floor has deleted."""
        reports = {me: own}
        for writer in writers:
            if writer != me:
                report = self._reports.get((writer, name))
                if report is None:
                    self._pending.pop(name, None)
                    return None
                reports[writer] = report
        previous = self._pending.get(name)
        frontier = VectorClock({w: v.get(w) for w, v in reports.items()})
        self._pending[name] = (writers, floor(reports.values()), frontier)
        if previous is not None and previous[0] == writers and own.dominates(previous[2]):
            return previous[1]
        return None

    def forget(self, keep: set[str]) -> None:
        """Drop what is kept about lists no longer held."""
        self._reports = {k: v for k, v in self._reports.items() if k[1] in keep}
        self._pending = {k: v for k, v in self._pending.items() if k in keep}
