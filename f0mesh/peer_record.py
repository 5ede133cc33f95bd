"""Signed peer records: what a peer says about itself (id, URL, time, tags, keys), signed by that peer.

Because each record is signed by the peer it describes, a neighbour can pass records on without
being able to point an id at a URL of its choosing; the timestamp orders a peer's records and
tells how fresh the news is.

Two forms travel. The **map** (version 2) is extensible: ``{"v": 2, "id", "url", "seen", "loc",
"tags", "x25519", "topics", ...}`` signed whole, so fields this code does not know are kept, verified and
relayed as they came; it is capped in bytes and entries. The **list** (version 1) is what nodes from
before the map accept: ``[id, url, seen, location, sig]``, plus a sixth element ``{"private": true,
"relays": [...]}`` for a private node (a node from before private mode refuses that one and never
dials it). A map carries ``sig1``, the peer's own signature of its list form, so any node can hand
an old neighbour the list form of a record it relays (``to_wire(legacy=True)``) without the
subject's key: rolling upgrades lose the new fields on old nodes, never the record.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field, replace
from typing import Any

import msgpack

from f0mesh.errors import IdentityError, SignatureError
from f0mesh.identity import Identity, is_peer_id, verify

_DOMAIN = "f0mesh-peer-record-v1"
_DOMAIN_MAP = "f0mesh-peer-record-v2"
VERSION = 2
MAX_URL = 512
MAX_RELAYS = 8
MAX_RECORD_BYTES = 2048
MAX_ENTRIES = 24
MAX_TAGS = 16
MAX_TAG_KEY = 32
MAX_TAG_VALUE = 128
TAG_KEY = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")
MAX_TOPICS = 32  # the gossip topics a record names; a node with more names those that fit
MAX_TOPIC_CHARS = 128
_SIG_ROOM = 80  # what the signature adds to a packed map
# the keys this code reads from a map; any other key is the "extra" of a newer version
_KNOWN = frozenset(
    {"v", "id", "url", "seen", "loc", "private", "relays", "tags", "x25519", "topics", "sig1", "sig"}
)


def check_tags(tags: Any) -> dict[str, str]:
    """Tags as a peer may state them; ValueError says what is wrong (also the CLI's ``--tag`` check)."""
    if not isinstance(tags, dict) or len(tags) > MAX_TAGS:
        raise ValueError(f"tags are not a map of at most {MAX_TAGS} entries")
    for key, value in tags.items():
        if not isinstance(key, str) or len(key) > MAX_TAG_KEY or not TAG_KEY.match(key):
            raise ValueError(
                f"tag key {str(key)[:40]!r} is not 1..{MAX_TAG_KEY} of a-z 0-9 _ . - (starting a-z0-9)"
            )
        if not isinstance(value, str) or len(value) > MAX_TAG_VALUE:
            raise ValueError(f"tag {key!r}: the value is not a string of at most {MAX_TAG_VALUE} characters")
    return dict(tags)


def check_topics(topics: Any) -> tuple[str, ...]:
    """The topics a peer says it subscribes to: display only, so any short distinct strings."""
    if (
        not isinstance(topics, list | tuple)
        or len(topics) > MAX_TOPICS
        or not all(isinstance(t, str) and 0 < len(t) <= MAX_TOPIC_CHARS for t in topics)
        or len(set(topics)) != len(topics)
    ):
        raise ValueError(
            f"topics are not at most {MAX_TOPICS} distinct names of 1..{MAX_TOPIC_CHARS} characters"
        )
    return tuple(topics)


def parse_tag(text: str) -> tuple[str, str]:
    """``key=value`` from the command line."""
    key, sep, value = text.partition("=")
    if not sep:
        raise ValueError(f"{text[:80]!r} is not key=value")
    check_tags({key: value})
    return key, value


@dataclass(frozen=True)
class PeerRecord:
    peer_id: str
    url: str
    seen: float
    location: str | None
    sig: bytes
    private: bool = False
    relays: tuple[str, ...] = ()
    tags: dict[str, str] = field(default_factory=dict)
    x25519: bytes | None = None  # the key direct messages to this peer are encrypted to
    sig1: bytes | None = None  # the signature of the list form; None for a record that came as a list
    extra: dict[str, Any] = field(default_factory=dict)  # fields of a newer version, kept and relayed
    version: int = 1
    topics: tuple[str, ...] = ()  # the gossip topics it subscribes to by name (none: all, or unsaid)

    def _extension(self) -> list[dict[str, Any]]:
        return [{"private": True, "relays": list(self.relays)}] if self.private else []

    def signed_bytes(self) -> bytes:
        """What ``sig1`` (or a list record's ``sig``) covers: the list form's bytes, unchanged since v1."""
        return msgpack.packb([_DOMAIN, self.peer_id, self.url, self.seen, self.location, *self._extension()])

    def _map(self) -> dict[str, Any]:
        body: dict[str, Any] = {**self.extra, "v": self.version, "id": self.peer_id, "url": self.url}
        body["seen"] = self.seen
        body["loc"] = self.location
        if self.private:
            body["private"] = True
            body["relays"] = list(self.relays)
        if self.tags:
            body["tags"] = dict(self.tags)
        if self.x25519 is not None:
            body["x25519"] = self.x25519
        if self.topics:
            body["topics"] = list(self.topics)
        body["sig1"] = self.sig1
        return body

    def map_signed_bytes(self) -> bytes:
        return msgpack.packb([_DOMAIN_MAP, _canonical(self._map())], use_bin_type=True)

    @classmethod
    def create(
        cls,
        identity: Identity,
        url: str,
        location: str | None = None,
        *,
        private: bool = False,
        relays: tuple[str, ...] = (),
        tags: dict[str, str] | None = None,
        x25519: bytes | None = None,
        topics: tuple[str, ...] | list[str] = (),
    ) -> PeerRecord:
        """``topics`` beyond MAX_TOPICS, or beyond what fits in MAX_RECORD_BYTES, are left out."""
        seen = round(time.time(), 3)
        relays = tuple(relays[:MAX_RELAYS]) if private else ()
        tags = check_tags(tags or {})
        named = check_topics(list(dict.fromkeys(topics))[:MAX_TOPICS])
        v1 = cls(identity.peer_id, url, seen, location, b"", private, relays)
        sig1 = identity.sign(v1.signed_bytes())
        fields = (private, relays, tags, x25519, sig1, {}, VERSION)
        unsigned = cls(identity.peer_id, url, seen, location, b"", *fields, named)
        while unsigned.topics and _packed_size(unsigned.to_wire()) + _SIG_ROOM > MAX_RECORD_BYTES:
            unsigned = replace(unsigned, topics=unsigned.topics[:-1])
        return replace(unsigned, sig=identity.sign(unsigned.map_signed_bytes()))

    def to_wire(self, *, legacy: bool = False) -> Any:
        """The map, or (``legacy``, or a record that came as a list) the list an old node accepts."""
        if legacy or self.version == 1:
            sig = self.sig if self.version == 1 else self.sig1
            return [self.peer_id, self.url, self.seen, self.location, sig, *self._extension()]
        return {**self._map(), "sig": self.sig}

    @classmethod
    def from_wire(cls, data: Any, *, now: float | None = None, max_future_s: float = 60.0) -> PeerRecord:
        """Decode and verify either form; raises ValueError with the reason for anything unacceptable."""
        if isinstance(data, dict):
            record = cls._from_map(data)
        elif isinstance(data, list) and len(data) in (5, 6):
            peer_id, url, seen, location, sig = data[:5]
            private, relays = (True, _relays(data[5])) if len(data) == 6 else (False, ())
            record = cls(peer_id, url, _number(seen), location, sig, private, relays)
        else:
            raise ValueError("peer record is neither a map nor a 5- or 6-element list")
        record._check(time.time() if now is None else now, max_future_s)
        return record

    @classmethod
    def _from_map(cls, data: dict[str, Any]) -> PeerRecord:
        if len(data) > MAX_ENTRIES or not all(isinstance(k, str) for k in data):
            raise ValueError(f"peer record map has more than {MAX_ENTRIES} entries or a non-string key")
        if _packed_size(data) > MAX_RECORD_BYTES:
            raise ValueError(f"peer record is larger than {MAX_RECORD_BYTES} bytes")
        version = data.get("v")
        if not isinstance(version, int) or isinstance(version, bool) or version < VERSION:
            raise ValueError("peer record map has no version of 2 or more")
        private = data.get("private", False)
        if private not in (True, False):
            raise ValueError("peer record 'private' is not a boolean")
        relays = _relays({"private": True, "relays": data.get("relays")}) if private else ()
        try:
            tags = check_tags(data.get("tags", {}))
        except ValueError as exc:
            raise ValueError(f"peer record {exc}") from exc
        try:
            topics = check_topics(data.get("topics", []))
        except ValueError as exc:
            raise ValueError(f"peer record {exc}") from exc
        x25519, sig1 = data.get("x25519"), data.get("sig1")
        if x25519 is not None and not (isinstance(x25519, bytes) and len(x25519) == 32):
            raise ValueError("peer record x25519 key is not 32 bytes")
        if not isinstance(sig1, bytes):
            raise ValueError("peer record has no signature of its list form")
        extra = {k: v for k, v in data.items() if k not in _KNOWN}
        return cls(
            data.get("id"),  # type: ignore[arg-type]  # checked by _check
            data.get("url"),  # type: ignore[arg-type]
            _number(data.get("seen")),  # type: ignore[arg-type]
            data.get("loc"),
            data.get("sig"),  # type: ignore[arg-type]
            private,
            relays,
            tags,
            x25519,
            sig1,
            extra,
            version,
            topics,
        )

    def _check(self, now: float, max_future_s: float) -> None:
        peer_id, url, seen, location, sig = self.peer_id, self.url, self.seen, self.location, self.sig
        if not (isinstance(peer_id, str) and isinstance(url, str) and isinstance(sig, bytes)):
            raise ValueError("peer record fields have the wrong types")
        if not isinstance(seen, (int, float)) or isinstance(seen, bool):
            raise ValueError("peer record timestamp is not a number")
        if location is not None and (not isinstance(location, str) or len(location) > 64):
            raise ValueError("peer record location is malformed")
        if len(url) > MAX_URL or not url.startswith(("http://", "https://")):
            raise ValueError("peer record URL is not an http(s) URL")
        if seen > now + max_future_s:
            raise ValueError("peer record is dated in the future")
        try:
            if self.version == 1:
                verify(peer_id, self.signed_bytes(), sig)
            else:
                assert self.sig1 is not None
                verify(peer_id, self.map_signed_bytes(), sig)
                verify(peer_id, self.signed_bytes(), self.sig1)
        except (SignatureError, IdentityError) as exc:
            raise ValueError(f"peer record signature: {exc}") from exc


def _packed_size(value: Any) -> int:
    return len(msgpack.packb(value, use_bin_type=True))


def _canonical(value: Any) -> Any:
    """Maps as sorted pairs at every depth: a relay or a replicated document may reorder keys."""
    if isinstance(value, dict):
        return sorted((str(k), _canonical(v)) for k, v in value.items())
    if isinstance(value, list | tuple):
        return [_canonical(v) for v in value]
    return value


def _number(value: Any) -> Any:
    """Timestamps are signed as floats; an int is read as the float it stands for."""
    return float(value) if isinstance(value, int) and not isinstance(value, bool) else value


def _relays(extension: Any) -> tuple[str, ...]:
    if not isinstance(extension, dict) or extension.get("private") is not True:
        raise ValueError("peer record extension is not a private-node marker")
    relays = extension.get("relays")
    if (
        not isinstance(relays, list)
        or len(relays) > MAX_RELAYS
        or not all(isinstance(r, str) and is_peer_id(r) for r in relays)
    ):
        raise ValueError(f"peer record relays are not a list of at most {MAX_RELAYS} PeerIds")
    return tuple(relays)
