"""Last-writer-wins map: one LWW register per key, deletes kept as tombstones so they beat older writes."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from f0mesh.crdt.codec import (
    Element,
    Timestamp,
    check_element,
    check_value_bytes,
    element_key,
    freeze,
    pack_value,
    unpack_value,
)
from f0mesh.crdt.replicated import OpId, Replicated, check_seq, resolve_origin
from f0mesh.crdt.vector_clock import VectorClock

# (ts, live, value bytes, origin, seq). Tuple order is the LWW order: later ts wins; on equal ts a write beats
# a delete, then the greater canonical value bytes win, then origin and seq, so every replica picks the same.
_Rec = tuple[Any, bool, bytes, str, int]


def _rec_from_wire(raw: Any) -> _Rec:
    ts, live, data, origin, seq = raw
    if not isinstance(live, bool) or not isinstance(origin, str):
        raise ValueError(f"bad register record {raw!r}")
    check_seq(seq)
    if live:
        check_value_bytes(data)
    elif data != b"":
        raise ValueError("a tombstone carries no value")
    return (ts, live, data, origin, seq)


class LWWMap(Replicated):
    """A map of JSON-like values (None, bool, int, float, str, bytes, lists, str-keyed dicts) with LWW keys.

    Keys are str, int, bytes or tuples of them. Values are stored as canonical msgpack bytes, so get() returns
    a fresh copy and ties compare deterministically. Tie-break for equal timestamps: a set beats a delete,
    then the greater canonical value bytes win. Origins and timestamps work as in LWWElementSet.

    The conflict log records merges where two different values (a delete counts as one) for a key met and
    neither side had seen the other's write: {"key", "kept", "discarded", "kept_ts", "discarded_ts",
    "kept_deleted", "discarded_deleted", "kept_origin", "discarded_origin"}; a deleted side's value is None.
    """

    KIND = "lww-map"

    def __init__(self, replica_id: str | None = None) -> None:
        super().__init__(replica_id)
        self._regs: dict[Element, _Rec] = {}

    def set(self, key: Element, value: Any, ts: Timestamp, *, origin: str | None = None) -> None:
        self._apply(key, True, pack_value(value), ts, origin)

    def delete(self, key: Element, ts: Timestamp, *, origin: str | None = None) -> None:
        """Delete as of ts; recorded even for an unknown key, as it must beat older concurrent sets."""
        self._apply(key, False, b"", ts, origin)

    def _apply(self, key: Element, live: bool, data: bytes, ts: Timestamp, origin: str | None) -> None:
        check_element(key)
        origin = resolve_origin(ts, origin, self.replica_id)
        self._admit_ts(ts)
        seq = self._next_seq(origin)
        rec = (ts, live, data, origin, seq)
        current = self._regs.get(key)
        if current is None or rec > current:
            self._regs[key] = rec
        self._ops.add(origin, seq - 1, seq)

    def get(self, key: Element, default: Any = None) -> Any:
        rec = self._regs.get(key)
        return unpack_value(rec[2]) if rec is not None and rec[1] else default

    def __contains__(self, key: Element) -> bool:
        rec = self._regs.get(key)
        return rec is not None and rec[1]

    def items(self) -> list[tuple[Element, Any]]:
        """Live (key, value) pairs, in the canonical key order every replica shares."""
        live = [(key, rec[2]) for key, rec in self._regs.items() if rec[1]]
        live.sort(key=lambda pair: element_key(pair[0]))
        return [(key, unpack_value(data)) for key, data in live]

    def to_dict(self) -> dict[Element, Any]:
        return dict(self.items())

    def timestamp(self, key: Element) -> Timestamp | None:
        """When the key was last written or deleted; None if this replica holds no record of it."""
        rec = self._regs.get(key)
        return None if rec is None else rec[0]

    def writer(self, key: Element) -> str | None:
        """The origin of the key's last write or delete; None if this replica holds no record of it."""
        rec = self._regs.get(key)
        return None if rec is None else rec[3]

    def merge(self, other: LWWMap) -> None:
        """Join other into self, in place."""
        self._prepare_merge(other)
        found = []
        for key, theirs in list(other._regs.items()):
            mine = self._regs.get(key)
            if mine is None or theirs > mine:
                self._regs[key] = theirs
            if mine is not None and (conflict := self._conflict(key, mine, theirs, other)):
                found.append(conflict)
        self._ops.union(other._ops)
        self._merge_sigs(other)
        self._log_conflicts(found)

    def _conflict(self, key: Element, mine: _Rec, theirs: _Rec, other: LWWMap) -> dict[str, Any] | None:
        if mine[1:3] == theirs[1:3] or other._knows(mine[3], mine[4]) or self._knows(theirs[3], theirs[4]):
            return None
        kept, lost = (theirs, mine) if theirs > mine else (mine, theirs)
        return {
            "key": key,
            "kept": unpack_value(kept[2]) if kept[1] else None,
            "discarded": unpack_value(lost[2]) if lost[1] else None,
            "kept_ts": kept[0],
            "discarded_ts": lost[0],
            "kept_deleted": not kept[1],
            "discarded_deleted": not lost[1],
            "kept_origin": kept[3],
            "discarded_origin": lost[3],
        }

    def delta_since(self, version: VectorClock) -> LWWMap:
        """The registers a replica at `version` lacks (see Replicated for the delta contract)."""
        delta = self._new_delta(version)
        delta._regs = {key: rec for key, rec in self._regs.items() if rec[4] > version.get(rec[3])}
        return self._finish_delta(delta)

    def collect_tombstones(self, before_ts: Timestamp) -> int:
        """Forget deletes older than before_ts; returns how many went.

        Safe only if no write stamped before the horizon can still arrive from any replica: a late set older
        than a collected delete would bring its key back. Run it on every replica with the same horizon.
        """
        self._check_ts_kind(before_ts)
        dead = [key for key, rec in self._regs.items() if not rec[1] and rec[0] < before_ts]
        for key in dead:
            del self._regs[key]
        return len(dead)

    def _records_to_wire(self) -> list[Any]:
        return [[key, list(self._regs[key])] for key in sorted(self._regs, key=element_key)]

    def _load_records(self, wire: list[Any]) -> None:
        for raw_key, raw_rec in wire:
            key = freeze(raw_key)
            check_element(key)
            if key in self._regs:
                raise ValueError(f"key {key!r} listed twice")
            rec = _rec_from_wire(raw_rec)
            self._admit_ts(rec[0])
            self._regs[key] = rec

    def _held_ops(self) -> Iterable[tuple[str, int]]:
        for rec in self._regs.values():
            yield rec[3], rec[4]

    def records(self) -> Iterator[tuple[Element, str, int, bool, Any]]:
        """(key, origin, seq, live, value) of every register, tombstones included: for write rules."""
        for key, rec in self._regs.items():
            yield key, rec[3], rec[4], rec[1], unpack_value(rec[2]) if rec[1] else None

    def _op_contents(self) -> Iterator[tuple[str, int, list[Any]]]:
        for key, (ts, live, data, origin, seq) in self._regs.items():
            yield origin, seq, ["map", key, ts, live, data]

    def _op_stamps(self) -> Iterator[tuple[str, int, Timestamp]]:
        for ts, _live, _data, origin, seq in self._regs.values():
            yield origin, seq, ts

    def _drop_records(self, ops: set[OpId]) -> None:
        self._regs = {key: rec for key, rec in self._regs.items() if (rec[3], rec[4]) not in ops}

    def _state(self) -> object:
        return self._regs

    def _copy_records(self, other: LWWMap) -> None:
        other._regs = dict(self._regs)
