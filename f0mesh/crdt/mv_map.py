"""Multi-value map: per key, every write that no other write has seen is kept (a multi-value register).

Each write records what it saw: the writes it replaced on its key, summed up as (origin, highest seq) pairs
(a dotted version vector). A write covers another when it saw it, or when both are by one origin and it is
the later one. A merge keeps, per key, the writes no other write covers, so concurrent writes survive side
by side as siblings until a writer writes the key again; which sibling a reader is shown is a pure function
of the siblings (see items), so every replica shows the same. What a write saw is part of the op its
author signs, so no relaying peer can make a sibling look superseded.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
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

MAX_SIBLINGS = 65  # concurrent writes of one key: one per writer at most (a policy names at most 65)
MAX_SEEN = 130  # origins one write saw on its key: writers named now or before

Seen = tuple[tuple[str, int], ...]  # sorted (origin, highest seq seen)
# (ts, live, value bytes, origin, seq, seen): ordered as LWWMap's records, so the default pick is LWW's.
Sib = tuple[Any, bool, bytes, str, int, Seen]


def covers(later: Sib, earlier: Sib, seen: Mapping[str, int] | None = None) -> bool:
    """True when `later` saw `earlier` (or is a later write of the same origin); seen: later's, as a dict."""
    if later[3] == earlier[3]:
        return later[4] > earlier[4]
    return (dict(later[5]) if seen is None else seen).get(earlier[3], 0) >= earlier[4]


def _frontier(sibs: Iterable[Sib]) -> tuple[Sib, ...]:
    """The writes no other write saw: at most 2 * MAX_SIBLINGS squared dictionary look-ups."""
    pool = {s: dict(s[5]) for s in set(sibs)}
    return tuple(sorted(s for s in pool if not any(covers(r, s, seen) for r, seen in pool.items() if r != s)))


def _sib_from_wire(raw: Any) -> Sib:
    ts, live, data, origin, seq, flat = raw
    if not isinstance(live, bool) or not isinstance(origin, str):
        raise ValueError(f"bad sibling {str(raw)[:200]}")
    check_seq(seq)
    if live:
        check_value_bytes(data)
    elif data != b"":
        raise ValueError("a tombstone carries no value")
    if not isinstance(flat, list) or len(flat) % 2 or len(flat) > 2 * MAX_SEEN:
        raise ValueError(f"a write may have seen at most {MAX_SEEN} origins")
    seen = tuple(zip(flat[::2], flat[1::2], strict=True))
    for seen_origin, seen_seq in seen:
        if not isinstance(seen_origin, str):
            raise ValueError("seen origins must be str")
        check_seq(seen_seq)
    if list(seen) != sorted(dict(seen).items()):
        raise ValueError("seen origins must be sorted and distinct")
    return (ts, live, data, origin, seq, seen)


def _sib_to_wire(sib: Sib) -> list[Any]:
    return [*sib[:5], [n for pair in sib[5] for n in pair]]


class MVMap(Replicated):
    """A map of JSON-like values whose concurrent writes to a key are all kept until one replaces them.

    Keys and values as in LWWMap. A local write (set or delete) replaces every sibling this replica holds of
    the key. The conflict log stays empty: open siblings are the conflicts, read with siblings().
    """

    KIND = "mv-map"

    def __init__(self, replica_id: str | None = None) -> None:
        super().__init__(replica_id)
        self._regs: dict[Element, tuple[Sib, ...]] = {}

    def set(self, key: Element, value: Any, ts: Timestamp, *, origin: str | None = None) -> None:
        self._apply(key, True, pack_value(value), ts, origin)

    def delete(self, key: Element, ts: Timestamp, *, origin: str | None = None) -> None:
        self._apply(key, False, b"", ts, origin)

    def _apply(self, key: Element, live: bool, data: bytes, ts: Timestamp, origin: str | None) -> None:
        check_element(key)
        origin = resolve_origin(ts, origin, self.replica_id)
        self._admit_ts(ts)
        seq = self._next_seq(origin)
        seen: dict[str, int] = {}
        for sib in self._regs.get(key, ()):
            for seen_origin, seen_seq in ((sib[3], sib[4]), *sib[5]):
                seen[seen_origin] = max(seen.get(seen_origin, 0), seen_seq)
        seen.pop(origin, None)  # a write covers its own origin's earlier writes anyway
        self._regs[key] = ((ts, live, data, origin, seq, tuple(sorted(seen.items()))),)
        self._ops.add(origin, seq - 1, seq)

    # -- reading -------------------------------------------------------------------------------------

    def siblings(self, key: Element) -> tuple[Sib, ...]:
        """The writes of key that no other write has seen, in LWW order (the LWW winner last)."""
        return self._regs.get(key, ())

    def keys(self) -> list[Element]:
        return sorted(self._regs, key=element_key)

    def pick(self, key: Element, rank: Mapping[str, int] | None = None) -> Sib | None:
        """The sibling a reader is shown: the highest-ranked origin (unranked count 0), then LWW order."""
        sibs = self._regs.get(key)
        if not sibs:
            return None
        if not rank:
            return sibs[-1]
        return max(sibs, key=lambda s: (rank.get(s[3], 0), s[:5]))

    def get(self, key: Element, default: Any = None, rank: Mapping[str, int] | None = None) -> Any:
        sib = self.pick(key, rank)
        return unpack_value(sib[2]) if sib is not None and sib[1] else default

    def items(self, rank: Mapping[str, int] | None = None) -> list[tuple[Element, Any]]:
        """Live (key, picked value) pairs, in the canonical key order."""
        out = []
        for key in self.keys():
            sib = self.pick(key, rank)
            if sib is not None and sib[1]:
                out.append((key, unpack_value(sib[2])))
        return out

    def __contains__(self, key: Element) -> bool:
        sib = self.pick(key)
        return sib is not None and sib[1]

    def open_keys(self) -> list[Element]:
        """Keys that hold more than one sibling: concurrent writes no writer has resolved yet."""
        return [key for key in self.keys() if len(self._regs[key]) > 1]

    def timestamp(self, key: Element) -> Timestamp | None:
        sibs = self._regs.get(key)
        return sibs[-1][0] if sibs else None

    # -- merging -------------------------------------------------------------------------------------

    def merge(self, other: MVMap) -> None:
        self._prepare_merge(other)
        for key, theirs in list(other._regs.items()):
            kept = _frontier((*self._regs.get(key, ()), *theirs))
            if kept:
                self._regs[key] = kept
            else:  # only writes that claim to have seen each other: neither is believed
                self._regs.pop(key, None)
        self._ops.union(other._ops)
        self._merge_sigs(other)

    def admit(self, delta: MVMap) -> None:
        """Also refuse a delta that would leave a key with more siblings than MAX_SIBLINGS (one per origin
        at most: a later write of an origin covers its earlier ones), so what merges here always loads."""
        super().admit(delta)
        for key, theirs in delta._regs.items():
            origins = {s[3] for s in (*self._regs.get(key, ()), *theirs)}
            if len(origins) > MAX_SIBLINGS:
                raise ValueError(f"{len(origins)} concurrent writers of {str(key)[:80]!r}")

    def delta_since(self, version: VectorClock) -> MVMap:
        delta = self._new_delta(version)
        for key, sibs in self._regs.items():
            newer = tuple(s for s in sibs if s[4] > version.get(s[3]))
            if newer:
                delta._regs[key] = newer
        return self._finish_delta(delta)

    def collect_tombstones(self, before_ts: Timestamp) -> int:
        """Forget keys whose every sibling is a delete older than before_ts (as LWWMap does)."""
        self._check_ts_kind(before_ts)
        dead = [k for k, sibs in self._regs.items() if all(not s[1] and s[0] < before_ts for s in sibs)]
        for key in dead:
            del self._regs[key]
        return len(dead)

    # -- Replicated plumbing --------------------------------------------------------------------------

    def _records_to_wire(self) -> list[Any]:
        return [[key, [_sib_to_wire(s) for s in self._regs[key]]] for key in self.keys()]

    def _load_records(self, wire: list[Any]) -> None:
        for raw_key, raw_sibs in wire:
            key = freeze(raw_key)
            check_element(key)
            if key in self._regs:
                raise ValueError(f"key {str(key)[:80]!r} listed twice")
            if not isinstance(raw_sibs, list) or not 0 < len(raw_sibs) <= MAX_SIBLINGS:
                raise ValueError(f"a key holds 1..{MAX_SIBLINGS} siblings")
            sibs = tuple(_sib_from_wire(raw) for raw in raw_sibs)
            for sib in sibs:
                self._admit_ts(sib[0])
            if _frontier(sibs) != sibs:
                raise ValueError(f"the siblings of {str(key)[:80]!r} are not sorted, distinct and concurrent")
            self._regs[key] = sibs

    def _held_ops(self) -> Iterable[tuple[str, int]]:
        for sibs in self._regs.values():
            for sib in sibs:
                yield sib[3], sib[4]

    def records(self) -> Iterator[tuple[Element, str, int, bool, Any]]:
        """(key, origin, seq, live, value) of every sibling, tombstones included."""
        for key, sibs in self._regs.items():
            for _ts, live, data, origin, seq, _seen in sibs:
                yield key, origin, seq, live, unpack_value(data) if live else None

    def _op_contents(self) -> Iterator[tuple[str, int, list[Any]]]:
        for key, sibs in self._regs.items():
            for sib in sibs:
                ts, live, data, origin, seq, _seen = sib
                yield origin, seq, ["mvmap", key, ts, live, data, _sib_to_wire(sib)[5]]

    def _op_stamps(self) -> Iterator[tuple[str, int, Timestamp]]:
        for sibs in self._regs.values():
            for sib in sibs:
                yield sib[3], sib[4], sib[0]

    def _drop_records(self, ops: set[OpId]) -> None:
        regs = {}
        for key, sibs in self._regs.items():
            kept = tuple(s for s in sibs if (s[3], s[4]) not in ops)
            if kept:
                regs[key] = kept
        self._regs = regs

    def _state(self) -> object:
        return self._regs

    def _copy_records(self, other: MVMap) -> None:
        other._regs = dict(self._regs)
