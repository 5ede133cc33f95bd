"""Named documents: the CRDT behind each name, the changes the API makes to it, and JSON views of both.

A change is validated in full before any of it is applied, so a bad request never leaves half a change in
the document (and never half a change on the wire).
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass, field
from typing import Any, ClassVar

from f0mesh.crdt import HLC, RGA, HLCTimestamp, LWWElementSet, LWWMap, MVMap, VectorClock
from f0mesh.crdt.codec import Element, check_element, element_key, pack, pack_value, unpack, unpack_value
from f0mesh.crdt.replicated import Replicated
from f0mesh.crdt.rga import RGAId
from f0mesh.errors import ConflictError, F0MeshError

KINDS: dict[str, type[Replicated]] = {"map": LWWMap, "set": LWWElementSet, "list": RGA}
_MV_TAG = pack(MVMap.KIND)  # a map resolved by siblings (not by the last writer) says so in its bytes
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


def crdt_class(kind: str, data: bytes) -> type[Replicated]:
    """The CRDT that decodes a document's bytes: a map is an LWWMap, or an MVMap when its policy keeps
    siblings (ranked, keep-all)."""
    if kind == "map" and data[2 : 2 + len(_MV_TAG)] == _MV_TAG:
        return MVMap
    return KINDS[kind]


def decode(kind: str, data: bytes, replica_id: str | None = None) -> Replicated:
    return crdt_class(kind, data).from_bytes(data, replica_id)


def timestamps(kind: str, data: bytes) -> list[Any]:
    """Every op timestamp in a decoded-valid state's bytes, to check them and feed the HLC."""
    _fmt, crdt_kind, _ops, _context, records, *_sigs = unpack(data)
    if crdt_kind == MVMap.KIND:
        return [sib[0] for _key, sibs in records for sib in sibs]
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
    def new(cls, name: str, kind: str, replica_id: str, *, siblings: bool = False) -> Document:
        """siblings: a map whose policy resolves by its siblings (ranked, keep-all), an MVMap."""
        return cls(name, kind, (MVMap if siblings and kind == "map" else KINDS[kind])(replica_id))

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
        if isinstance(crdt, LWWMap | MVMap) and isinstance(change, MapChange):
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

    def replacement(self, value: Any, rank: dict[str, int] | None = None) -> Change:
        """The change that makes the content equal to value, touching only what differs (a key with open
        siblings differs: writing it resolves them)."""
        crdt = self.crdt
        if isinstance(crdt, LWWMap | MVMap):
            if not isinstance(value, dict):
                raise InvalidChange("a map's value must be a JSON object")
            current = dict(crdt.items(rank) if isinstance(crdt, MVMap) else crdt.items())
            unresolved = crdt.open_keys() if isinstance(crdt, MVMap) else []
            for key in unresolved:
                current.pop(key, None)
            try:
                writes = {
                    k: v
                    for k, v in value.items()
                    if k not in current or pack_value(v) != pack_value(current[k])
                }
            except (TypeError, ValueError) as exc:
                raise InvalidChange(str(exc)) from exc
            return MapChange(set=writes, delete=[k for k in (*current, *unresolved) if k not in value])
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

    def value(self, rank: dict[str, int] | None = None) -> Any:
        """rank: the document's ranked writers, for a ranked map (see Policy.ranking)."""
        crdt = self.crdt
        if isinstance(crdt, MVMap):
            return {json_key(k): jsonable(v) for k, v in crdt.items(rank)}
        if isinstance(crdt, LWWMap):
            return {json_key(k): jsonable(v) for k, v in crdt.items()}
        if isinstance(crdt, LWWElementSet):
            return [jsonable(e) for e in sorted(crdt.elements(), key=element_key)]
        assert isinstance(crdt, RGA)
        return jsonable(crdt.to_list())

    def entries(self) -> int:
        crdt = self.crdt
        if isinstance(crdt, LWWMap | MVMap):
            return len(crdt.items())
        if isinstance(crdt, LWWElementSet):
            return len(crdt.elements())
        assert isinstance(crdt, RGA)
        return len(crdt.ids())

    def view(self, rank: dict[str, int] | None = None) -> dict[str, Any]:
        view = {
            "name": self.name,
            "kind": self.kind,
            "value": self.value(rank),
            "version": self.crdt.version().to_dict(),
        }
        if isinstance(self.crdt, RGA):
            view["ids"] = [format_id(i) for i in self.crdt.ids()]
        if isinstance(self.crdt, MVMap):
            view["open"] = [json_key(k) for k in self.crdt.open_keys()]
        return view

    def summary(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "size": self.entries(), "bytes": self.size_estimate}

    def conflicts(self, rank: dict[str, int] | None = None, resolution: str = "") -> list[dict[str, Any]]:
        """The CRDT's conflict log in JSON: timestamps as sortable strings, plus how each was resolved; for a
        map that keeps siblings, then every key whose concurrent writes no writer has resolved yet."""
        out = self._logged()
        if isinstance(self.crdt, MVMap):
            out.extend(_open_entry(self.crdt, key, rank, resolution) for key in self.crdt.open_keys())
        return out

    def _logged(self) -> list[dict[str, Any]]:
        out = []
        for entry in self.crdt.conflicts():
            item = {
                key: str(value) if isinstance(value, HLCTimestamp) else jsonable(value)
                for key, value in entry.items()
            }
            item.setdefault("resolution", RESOLUTION.get(self.kind, ""))
            out.append(item)
        return out


def _open_entry(crdt: MVMap, key: Element, rank: dict[str, int] | None, resolution: str) -> dict[str, Any]:
    """A key with siblings, in the conflict log's words: the one readers are shown is "kept"."""
    picked = crdt.pick(key, rank)
    assert picked is not None
    siblings = [
        {
            "value": jsonable(unpack_value(s[2])) if s[1] else None,
            "deleted": not s[1],
            "ts": str(s[0]),
            "origin": s[3],
        }
        for s in crdt.siblings(key)
    ]
    lost = next(s for s in reversed(crdt.siblings(key)) if s != picked)
    if resolution == "ranked":
        rule = "ranked writer wins: the value of the writer ranked highest in the signed policy is shown"
    else:
        rule = "keep all: every concurrent value is kept until a writer writes the key again"
    return {
        "key": jsonable(key),
        "open": True,
        "siblings": siblings,
        "kept": jsonable(unpack_value(picked[2])) if picked[1] else None,
        "kept_ts": str(picked[0]),
        "kept_deleted": not picked[1],
        "kept_origin": picked[3],
        "discarded": jsonable(unpack_value(lost[2])) if lost[1] else None,
        "discarded_ts": str(lost[0]),
        "discarded_deleted": not lost[1],
        "discarded_origin": lost[3],
        "resolution": rule,
    }
