"""Last-writer-wins element set (Shapiro et al.): per element, the latest add or remove decides membership."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from f0mesh.crdt.codec import Element, Timestamp, check_element, element_key, freeze
from f0mesh.crdt.replicated import OpId, Replicated, check_seq, resolve_origin
from f0mesh.crdt.vector_clock import VectorClock

# (ts, origin, seq): tuple order makes equal timestamps still select one record on every replica.
_Rec = tuple[Any, str, int]

ADD = "add"
REMOVE = "remove"


def _absorb(register: dict[Element, _Rec], element: Element, rec: _Rec | None) -> None:
    if rec is not None:
        current = register.get(element)
        if current is None or rec > current:
            register[element] = rec


def _rec_to_wire(rec: _Rec | None) -> list[Any] | None:
    return None if rec is None else list(rec)


def _rec_from_wire(raw: Any) -> _Rec | None:
    if raw is None:
        return None
    ts, origin, seq = raw
    if not isinstance(origin, str):
        raise ValueError(f"bad op record {str(raw)[:200]}")
    check_seq(seq)
    return (ts, origin, seq)


class LWWElementSet(Replicated):
    """A set where each element is in or out according to its latest add or remove.

    Timestamps are any mutually comparable values (use one type everywhere); HLCTimestamp, int, float and str
    also serialise. Add wins a tie: an add and a remove with equal timestamps leave the element present.

    Each op's origin is the `origin` argument, else ts.node for an HLCTimestamp, else this replica's id. Only
    one replica may write under a given origin (its seq numbers name the ops for delta sync), which holds when
    every node stamps with its own HLC.

    The conflict log records merges where an add and a remove of one element met and neither side had seen the
    other's op: {"key": element, "kept": "add"|"remove", "discarded": "add"|"remove", "kept_ts",
    "discarded_ts", "kept_origin", "discarded_origin"}.
    """

    KIND = "lww-set"

    def __init__(self, replica_id: str | None = None) -> None:
        super().__init__(replica_id)
        self._adds: dict[Element, _Rec] = {}
        self._removes: dict[Element, _Rec] = {}

    def add(self, element: Element, ts: Timestamp, *, origin: str | None = None) -> None:
        self._apply(self._adds, element, ts, origin)

    def remove(self, element: Element, ts: Timestamp, *, origin: str | None = None) -> None:
        """Remove as of ts; valid for elements never seen here too, as it must beat older concurrent adds."""
        self._apply(self._removes, element, ts, origin)

    def _apply(
        self, register: dict[Element, _Rec], element: Element, ts: Timestamp, origin: str | None
    ) -> None:
        check_element(element)
        origin = resolve_origin(ts, origin, self.replica_id)
        self._admit_ts(ts)
        seq = self._next_seq(origin)
        _absorb(register, element, (ts, origin, seq))
        self._ops.add(origin, seq - 1, seq)

    def contains(self, element: Element) -> bool:
        return self._winner(element)[0] == ADD

    __contains__ = contains

    def elements(self) -> set[Element]:
        """A new Python set of the present elements (a set, since elements of mixed types do not sort)."""
        return {element for element in self._adds if self.contains(element)}

    def _winner(self, element: Element) -> tuple[str, _Rec] | tuple[None, None]:
        added, removed = self._adds.get(element), self._removes.get(element)
        if added is not None and (removed is None or added[0] >= removed[0]):
            return ADD, added
        if removed is not None:
            return REMOVE, removed
        return None, None

    def merge(self, other: LWWElementSet) -> None:
        """Join other into self, in place."""
        self._prepare_merge(other)
        found = []
        for element in list(dict.fromkeys([*other._adds, *other._removes])):
            kind, rec = self._winner(element)
            _absorb(self._adds, element, other._adds.get(element))
            _absorb(self._removes, element, other._removes.get(element))
            if (
                kind is not None
                and rec is not None
                and (conflict := self._conflict(element, kind, rec, other))
            ):
                found.append(conflict)
        self._ops.union(other._ops)
        self._merge_sigs(other)
        self._log_conflicts(found)

    def _conflict(
        self, element: Element, kind: str, rec: _Rec, other: LWWElementSet
    ) -> dict[str, Any] | None:
        """Our winning record `rec` met an opposite-kind record neither side had seen: log who lost."""
        theirs = other._adds.get(element) if kind == REMOVE else other._removes.get(element)
        if theirs is None or other._knows(rec[1], rec[2]) or self._knows(theirs[1], theirs[2]):
            return None
        kept_kind, kept = self._winner(element)
        assert kept_kind is not None and kept is not None
        if kept_kind == kind:
            lost_kind, lost = (ADD if kind == REMOVE else REMOVE), theirs
        else:
            lost_kind, lost = kind, rec
        return {
            "key": element,
            "kept": kept_kind,
            "discarded": lost_kind,
            "kept_ts": kept[0],
            "discarded_ts": lost[0],
            "kept_origin": kept[1],
            "discarded_origin": lost[1],
        }

    def delta_since(self, version: VectorClock) -> LWWElementSet:
        """The records a replica at `version` lacks (see Replicated for the delta contract)."""
        delta = self._new_delta(version)
        delta._adds = {e: r for e, r in self._adds.items() if r[2] > version.get(r[1])}
        delta._removes = {e: r for e, r in self._removes.items() if r[2] > version.get(r[1])}
        return self._finish_delta(delta)

    def collect_tombstones(self, before_ts: Timestamp) -> int:
        """Forget records older than before_ts that no longer decide membership; returns how many went.

        A remove older than the horizon goes with the add it beat (the element is simply absent); a remove
        beaten by a later add goes too. Safe only if no op stamped before the horizon can still arrive from
        any replica (e.g. the horizon trails every peer's acknowledged clock by more than the gossip delay):
        a late add older than a collected remove would resurrect its element. Run it on every replica with the
        same horizon; a full-state merge with a replica that has not collected brings the records back.
        """
        self._check_ts_kind(before_ts)
        dropped = 0
        for element, removed in list(self._removes.items()):
            if not removed[0] < before_ts:
                continue
            del self._removes[element]
            dropped += 1
            added = self._adds.get(element)
            if added is not None and added[0] < removed[0]:
                del self._adds[element]
                dropped += 1
        return dropped

    def _records_to_wire(self) -> list[Any]:
        elements = sorted(dict.fromkeys([*self._adds, *self._removes]), key=element_key)
        return [
            [element, _rec_to_wire(self._adds.get(element)), _rec_to_wire(self._removes.get(element))]
            for element in elements
        ]

    def _load_records(self, wire: list[Any]) -> None:
        for raw_element, raw_add, raw_remove in wire:
            element = freeze(raw_element)
            check_element(element)
            if element in self._adds or element in self._removes:
                raise ValueError(f"element {element!r} listed twice")
            added, removed = _rec_from_wire(raw_add), _rec_from_wire(raw_remove)
            if added is None and removed is None:
                raise ValueError(f"element {element!r} has no record")
            if added is not None:
                self._admit_ts(added[0])
                self._adds[element] = added
            if removed is not None:
                self._admit_ts(removed[0])
                self._removes[element] = removed

    def _held_ops(self) -> Iterable[tuple[str, int]]:
        for rec in (*self._adds.values(), *self._removes.values()):
            yield rec[1], rec[2]

    def _op_contents(self) -> Iterator[tuple[str, int, list[Any]]]:
        for kind, register in ((ADD, self._adds), (REMOVE, self._removes)):
            for element, (ts, origin, seq) in register.items():
                yield origin, seq, [kind, element, ts]

    def _op_stamps(self) -> Iterator[tuple[str, int, Timestamp]]:
        for ts, origin, seq in (*self._adds.values(), *self._removes.values()):
            yield origin, seq, ts

    def _drop_records(self, ops: set[OpId]) -> None:
        self._adds = {e: r for e, r in self._adds.items() if (r[1], r[2]) not in ops}
        self._removes = {e: r for e, r in self._removes.items() if (r[1], r[2]) not in ops}

    def _state(self) -> object:
        return self._adds, self._removes

    def _copy_records(self, other: LWWElementSet) -> None:
        other._adds = dict(self._adds)
        other._removes = dict(self._removes)
