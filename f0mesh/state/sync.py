"""Anti-entropy messages on a link's ctl channel: version vectors out, the missing deltas back.

    {"t": "state", "op": "versions", "reply": bool, "docs": [[name, kind, {origin: seq}], ...]}
    {"t": "state", "op": "delta", "name", "kind", "xfer": int, "page": i, "pages": n, "data": bytes}

Both ends send "versions" when a link opens; a receiver answers with one delta per document the sender
lacks something of, and with its own versions when asked to (reply), so either side alone can start a
round. ctl messages are msgpack, so delta bytes travel as they are. A delta larger than a page is cut into
pages that the receiver joins in order (the channel is reliable and ordered), so one big document never
holds the channel for long and never needs one huge frame.
"""

from __future__ import annotations

import base64
from collections import OrderedDict
from collections.abc import Iterable
from typing import Any

from f0mesh.crdt import VectorClock
from f0mesh.crdt.bounds import MAX_SEQ
from f0mesh.state.documents import KINDS, NAME_RE, Document

STATE_FRAME = "state"
MAX_VERSION_ENTRIES = 100_000  # origins summed over every document of one versions message
MAX_PARTIALS = 16  # deltas being joined at once, over all peers


class TooLarge(ValueError):
    """A delta over the size limit: well-formed, but refused."""


def versions_message(docs: Iterable[Document], *, reply: bool) -> dict[str, Any]:
    return {
        "t": STATE_FRAME,
        "op": "versions",
        "reply": reply,
        "docs": [[doc.name, doc.kind, doc.crdt.version().to_dict()] for doc in docs],
    }


def parse_versions(message: dict[str, Any], max_docs: int) -> dict[str, tuple[str, VectorClock]]:
    """name -> (kind, version); raises ValueError for anything malformed or too big."""
    docs = message.get("docs")
    if not isinstance(docs, list) or len(docs) > max_docs:
        raise ValueError(f"versions must list at most {max_docs} documents")
    out: dict[str, tuple[str, VectorClock]] = {}
    entries = 0
    for item in docs:
        if not isinstance(item, list) or len(item) != 3:
            raise ValueError("a versions entry is not [name, kind, version]")
        name, kind, version = item
        check_header(name, kind)
        if not isinstance(version, dict):
            raise ValueError(f"version of {name!r} is not a map")
        entries += len(version)
        if entries > MAX_VERSION_ENTRIES:
            raise ValueError("versions hold too many origins")
        try:
            clock = VectorClock.from_dict(version)
        except TypeError as exc:
            raise ValueError(str(exc)) from exc
        if any(clock.get(origin) > MAX_SEQ for origin in clock.nodes()):
            raise ValueError(f"version of {name!r} counts past {MAX_SEQ}")
        out[name] = (kind, clock)
    return out


def check_header(name: object, kind: object) -> None:
    if not isinstance(name, str) or not NAME_RE.fullmatch(name):
        raise ValueError(f"bad document name {str(name)[:80]!r}")
    if kind not in KINDS:
        raise ValueError(f"unknown document kind {str(kind)[:20]!r}")


def gossip_payload(name: str, kind: str, data: bytes) -> dict[str, str]:
    """Gossip payloads are JSON values, so the delta bytes travel as base64 text."""
    return {"name": name, "kind": kind, "delta": base64.b64encode(data).decode()}


def parse_gossip(payload: Any, max_bytes: int) -> tuple[str, str, bytes]:
    """(name, kind, delta bytes) of a "state" gossip payload; raises ValueError when malformed."""
    if not isinstance(payload, dict):
        raise ValueError("a state payload is a JSON object")
    name, kind, text = payload.get("name"), payload.get("kind"), payload.get("delta")
    check_header(name, kind)
    assert isinstance(name, str) and isinstance(kind, str)
    if not isinstance(text, str):
        raise ValueError("delta must be base64 text")
    if len(text) > (max_bytes + 2) // 3 * 4:
        raise TooLarge(f"delta of {name!r} exceeds {max_bytes} bytes")
    return name, kind, base64.b64decode(text, validate=True)


def delta_pages(name: str, kind: str, data: bytes, xfer: int, page_bytes: int) -> list[dict[str, Any]]:
    pages = max(1, -(-len(data) // page_bytes))
    return [
        {
            "t": STATE_FRAME,
            "op": "delta",
            "name": name,
            "kind": kind,
            "xfer": xfer,
            "page": i,
            "pages": pages,
            "data": data[i * page_bytes : (i + 1) * page_bytes],
        }
        for i in range(pages)
    ]


class Reassembler:
    """Joins paged deltas per (peer, transfer); bounded in bytes per delta and in deltas in progress."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._partials: OrderedDict[tuple[str, int], tuple[str, str, int, list[bytes], int]] = OrderedDict()

    def feed(self, peer: str, message: dict[str, Any]) -> tuple[str, str, bytes] | None:
        """The whole (name, kind, delta bytes) once its last page is in; raises ValueError for bad pages."""
        name, kind = message.get("name"), message.get("kind")
        check_header(name, kind)
        assert isinstance(name, str) and isinstance(kind, str)
        xfer, page, pages, data = (message.get(k) for k in ("xfer", "page", "pages", "data"))
        if not all(isinstance(n, int) and not isinstance(n, bool) for n in (xfer, page, pages)):
            raise ValueError("xfer, page and pages must be integers")
        assert isinstance(xfer, int) and isinstance(page, int) and isinstance(pages, int)
        if not isinstance(data, bytes) or not 0 <= page < pages:
            raise ValueError("a delta page needs bytes and 0 <= page < pages")
        key = (peer, xfer)
        if page == 0:
            self._partials.pop(key, None)
            if pages == 1:
                return self._bounded(name, kind, data)
            parts: list[bytes] = []
            size = 0
        else:
            held = self._partials.pop(key, None)
            if held is None or held[:3] != (name, kind, pages) or len(held[3]) != page:
                raise ValueError(f"page {page} of {name!r} arrived without the pages before it")
            parts, size = held[3], held[4]
        parts.append(data)
        size += len(data)
        if size > self.max_bytes:
            raise TooLarge(f"delta of {name!r} exceeds {self.max_bytes} bytes")
        if page == pages - 1:
            return name, kind, b"".join(parts)
        self._partials[key] = (name, kind, pages, parts, size)
        while len(self._partials) > MAX_PARTIALS:
            self._partials.popitem(last=False)
        return None

    def _bounded(self, name: str, kind: str, data: bytes) -> tuple[str, str, bytes]:
        if len(data) > self.max_bytes:
            raise TooLarge(f"delta of {name!r} exceeds {self.max_bytes} bytes")
        return name, kind, data
