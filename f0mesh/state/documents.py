"""Named documents: the CRDT behind each name, the changes the API makes to it, and JSON views of both.

A change is validated in full before any of it is applied, so a bad request never leaves half a change in
the document (and never half a change on the wire).
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass, field
from typing import Any, ClassVar

from f0mesh.crdt import HLC, RGA, HLCTimestamp, LWWElementSet, LWWMap, VectorClock
from f0mesh.crdt.codec import Element, check_element, element_key, pack_value, unpack
from f0mesh.crdt.replicated import Replicated
from f0mesh.crdt.rga import RGAId
from f0mesh.errors import ConflictError, F0MeshError

KINDS: dict[str, type[Replicated]] = {"map": LWWMap, "set": LWWElementSet, "list": RGA}
NAME_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
MAX_KEY_CHARS = 256
OP_OVERHEAD = 64  # bytes a record adds beyond its key and value (timestamp, origin, seq): a size estimate

RESOLUTION = {
    "map": "last writer wins: the later HLC timestamp (wall time, counter, node id) is kept; "
    "on equal timestamps a write beats a delete, then the greater encoded value",
    "set": "last writer wins: the later HLC timestamp (wall time, counter, node id) decides; "
    "on equal timestamps the add wins",
}


class InvalidChange(F0MeshError):
    code = "invalid"
    status = 422


def check_name(name: str) -> None:
    if not NAME_RE.fullmatch(name):
        raise InvalidChange(f"document name {name[:80]!r} must match {NAME_RE.pattern}", code="bad_name")


def check_key(key: Element) -> None:
    """Map keys and set elements written here: as the CRDTs allow, and text of bounded length."""
    check_element(key)
    if isinstance(key, str) and not 0 < len(key) <= MAX_KEY_CHARS:
        raise InvalidChange(f"keys and elements must be 1..{MAX_KEY_CHARS} characters, got {len(key)}")


def format_id(node_id: RGAId) -> str:
    """List element ids travel as "counter@replica": PeerIds never contain '@'."""
    return f"{node_id[0]}@{node_id[1]}"


def parse_id(text: str) -> RGAId:
    counter, sep, replica = text.partition("@")
    if not sep or not counter.isascii() or not counter.isdigit() or not replica or int(counter) < 1:
        raise InvalidChange(f"{text[:120]!r} is not a list element id (counter@replica)")
    return (int(counter), replica)


def jsonable(value: Any) -> Any:
    """CRDT values may hold bytes and tuples (from peers); JSON gets base64 text and arrays."""
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    if isinstance(value, list | tuple):
        return [jsonable(item) for item in value]
    if isinstance(value, dict):
        return {str(key): jsonable(item) for key, item in value.items()}
    return value


def json_key(key: Element) -> str:
    return key if isinstance(key, str) else str(jsonable(key))


def is_empty(crdt: Replicated) -> bool:
    """True for a delta that holds no op at all (nothing worth sending)."""
    return crdt == type(crdt)("empty")


def timestamps(kind: str, data: bytes) -> list[Any]:
    """Every op timestamp in a decoded-valid state's bytes, to check them and feed the HLC."""
    records = unpack(data)[4]
    if kind == "map":
        return [rec[0] for _key, rec in records]
    if kind == "set":
        return [rec[0] for _element, added, removed in records for rec in (added, removed) if rec is not None]
    return []


@dataclass
class MapChange:
    """Keys to write, then keys to delete (a key in both ends up deleted)."""

    set: dict[Element, Any] = field(default_factory=dict)
    delete: list[Element] = field(default_factory=list)
    kind: ClassVar[str] = "map"


@dataclass
class SetChange:
    """Elements to add, then elements to remove (one in both ends up removed)."""

    add: list[Element] = field(default_factory=list)
    remove: list[Element] = field(default_factory=list)
    kind: ClassVar[str] = "set"


@dataclass
class ListChange:
    """Deletes, then runs of values inserted after an anchor (None = the head), then values appended."""

    delete: list[RGAId] = field(default_factory=list)
    insert: list[tuple[RGAId | None, list[Any]]] = field(default_factory=list)
    append: list[Any] = field(default_factory=list)
    kind: ClassVar[str] = "list"


Change = MapChange | SetChange | ListChange


class Document:
    """One named CRDT with its bookkeeping: what is unsaved, what is not yet gossiped, how big it is."""

    def __init__(self, name: str, kind: str, crdt: Replicated, stored_bytes: int = 0) -> None:
        self.name = name
        self.kind = kind
        self.crdt = crdt
        self.stored_bytes = stored_bytes  # size at the last save
        self.grown_bytes = 0  # estimated growth since then
        self.dirty = False
        self.generation = 0  # counts changes, so a save that raced a change does not mark it saved
        self.unsent: VectorClock | None = None  # version before the first change not yet gossiped

    @classmethod
    def new(cls, name: str, kind: str, replica_id: str) -> Document:
        return cls(name, kind, KINDS[kind](replica_id))

    def copy(self) -> Document:
        """A private copy to write into: nobody sees its ops until they are saved and adopted."""
        return Document(self.name, self.kind, self.crdt.clone(), self.stored_bytes)

    @property
    def size_estimate(self) -> int:
        return self.stored_bytes + self.grown_bytes

    def changed(self, grown: int) -> None:
        self.dirty = True
        self.generation += 1
        self.grown_bytes += grown

    def saved(self, data: bytes, generation: int) -> None:
        self.stored_bytes = len(data)
        if generation == self.generation:
            self.dirty = False
            self.grown_bytes = 0

    # -- local changes -------------------------------------------------------------------------

    def check(self, change: Change) -> int:
        """Validate a change against this document; returns its estimated size in bytes."""
        if change.kind != self.kind:
            raise ConflictError(f"{self.name!r} is a {self.kind}, not a {change.kind}", code="kind_mismatch")
        if self._ops(change) > self.crdt.seq_room():
            raise ConflictError(
                f"{self.name!r} has no sequence numbers left for this change", code="counter_exhausted"
            )
        try:
            if isinstance(change, MapChange):
                for key in [*change.set, *change.delete]:
                    check_key(key)
                size = sum(len(pack_value(v)) + len(k) for k, v in change.set.items())
                return size + sum(len(k) for k in change.delete) + OP_OVERHEAD * self._ops(change)
            if isinstance(change, SetChange):
                for element in [*change.add, *change.remove]:
                    check_key(element)
                return sum(len(element_key(e)) for e in [*change.add, *change.remove]) + OP_OVERHEAD * (
                    self._ops(change)
                )
            assert isinstance(self.crdt, RGA)
            visible = set(self.crdt.ids())
            for node_id in change.delete:
                if node_id not in visible:
                    raise InvalidChange(f"list element {format_id(node_id)} is not in {self.name!r}")
            for anchor, _values in change.insert:
                if anchor is not None and anchor not in visible:
                    raise InvalidChange(f"anchor {format_id(anchor)} is not in {self.name!r}")
            values = [v for _anchor, run in change.insert for v in run] + change.append
            return sum(len(pack_value(v)) for v in values) + OP_OVERHEAD * self._ops(change)
        except (TypeError, ValueError) as exc:
            raise InvalidChange(str(exc)) from exc

    @staticmethod
    def _ops(change: Change) -> int:
        if isinstance(change, MapChange):
            return len(change.set) + len(change.delete)
        if isinstance(change, SetChange):
            return len(change.add) + len(change.remove)
        return len(change.delete) + sum(len(run) for _a, run in change.insert) + len(change.append)

    def apply(self, change: Change, hlc: HLC) -> list[RGAId]:
        """Apply a change that check() accepted; returns the ids of inserted list elements."""
        crdt = self.crdt
        if isinstance(crdt, LWWMap) and isinstance(change, MapChange):
            for key, value in change.set.items():
                crdt.set(key, value, hlc.now())
            for key in change.delete:
                crdt.delete(key, hlc.now())
            return []
        if isinstance(crdt, LWWElementSet) and isinstance(change, SetChange):
            for element in change.add:
                crdt.add(element, hlc.now())
            for element in change.remove:
                crdt.remove(element, hlc.now())
            return []
        assert isinstance(crdt, RGA) and isinstance(change, ListChange)
        inserted = []
        for node_id in change.delete:
            crdt.delete(node_id)
        for anchor, run in change.insert:
            for value in run:
                anchor = crdt.insert(anchor, value)
                inserted.append(anchor)
        ids = crdt.ids()
        tail = ids[-1] if ids else None
        for value in change.append:
            tail = crdt.insert(tail, value)
            inserted.append(tail)
        return inserted

    def replacement(self, value: Any) -> Change:
        """The change that makes the content equal to value, touching only what differs."""
        crdt = self.crdt
        if isinstance(crdt, LWWMap):
            if not isinstance(value, dict):
                raise InvalidChange("a map's value must be a JSON object")
            current = dict(crdt.items())
            try:
                writes = {
                    k: v
                    for k, v in value.items()
                    if k not in current or pack_value(v) != pack_value(current[k])
                }
            except (TypeError, ValueError) as exc:
                raise InvalidChange(str(exc)) from exc
            return MapChange(set=writes, delete=[k for k in current if k not in value])
        if isinstance(crdt, LWWElementSet):
            if not isinstance(value, list):
                raise InvalidChange("a set's value must be a JSON array")
            try:
                for element in value:
                    check_element(element)
            except (TypeError, ValueError) as exc:
                raise InvalidChange(str(exc)) from exc
            present = crdt.elements()
            wanted = list(dict.fromkeys(value))
            return SetChange(
                add=[e for e in wanted if e not in present], remove=[e for e in present if e not in wanted]
            )
        if not isinstance(value, list):
            raise InvalidChange("a list's value must be a JSON array")
        assert isinstance(crdt, RGA)
        if crdt.to_list() == value:
            return ListChange()
        return ListChange(delete=crdt.ids(), append=value)

    # -- views -----------------------------------------------------------------------------------

    def value(self) -> Any:
        crdt = self.crdt
        if isinstance(crdt, LWWMap):
            return {json_key(k): jsonable(v) for k, v in crdt.items()}
        if isinstance(crdt, LWWElementSet):
            return [jsonable(e) for e in sorted(crdt.elements(), key=element_key)]
        assert isinstance(crdt, RGA)
        return jsonable(crdt.to_list())

    def entries(self) -> int:
        crdt = self.crdt
        if isinstance(crdt, LWWMap):
            return len(crdt.items())
        if isinstance(crdt, LWWElementSet):
            return len(crdt.elements())
        assert isinstance(crdt, RGA)
        return len(crdt.ids())

    def view(self) -> dict[str, Any]:
        view = {
            "name": self.name,
            "kind": self.kind,
            "value": self.value(),
            "version": self.crdt.version().to_dict(),
        }
        if isinstance(self.crdt, RGA):
            view["ids"] = [format_id(i) for i in self.crdt.ids()]
        return view

    def summary(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "size": self.entries(), "bytes": self.size_estimate}

    def conflicts(self) -> list[dict[str, Any]]:
        """The CRDT's conflict log in JSON: timestamps as sortable strings, plus how each was resolved."""
        out = []
        for entry in self.crdt.conflicts():
            item = {
                key: str(value) if isinstance(value, HLCTimestamp) else jsonable(value)
                for key, value in entry.items()
            }
            item.setdefault("resolution", RESOLUTION.get(self.kind, ""))
            out.append(item)
        return out
