"""The peer registry as a replicated LWW map of two fields per peer, each {record, status, last_seen}.

PeerId -> the peer's own entry, written live by that peer alone; ("seen", PeerId) -> the liveness mark
that others write of it. Both carry the peer's own signed PeerRecord, so whoever writes or relays one
cannot point an id at a URL of its choosing: one whose record does not verify is ignored, and the registry
shows the URL, location and relays of the newer signed record of the two, so replaying an older record
moves nothing. Status and last_seen are observations (Serf-like membership): "alive" while the peer
refreshes its own entry or is seen in peer exchange, "left" once it announced a clean shutdown (only its
own entry says so), "gone" once nobody heard of it for a while; the field written last tells the status.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

from f0mesh.crdt import LWWMap
from f0mesh.peer_record import PeerRecord

PEERS_DOC = "peers"
ALIVE = "alive"
LEFT = "left"
GONE = "gone"
STATUSES = frozenset({ALIVE, LEFT, GONE})
MARK = "seen"


@dataclass(frozen=True, slots=True)
class PeerInfo:
    """A verified registry entry, as the node mirrors it into mesh_peers."""

    peer_id: str
    url: str
    location: str | None
    last_seen: float
    status: str
    private: bool = False  # its URL takes no offers: reach it through the relays
    relays: tuple[str, ...] = ()
    tags: dict[str, str] = field(default_factory=dict)
    x25519: bytes | None = None
    topics: tuple[str, ...] = ()  # what its record says it subscribes to (display only)
    signed_at: float = 0.0  # the record's own signed time: the newer record tells the URL


def make_entry(record: PeerRecord, status: str, last_seen: float) -> dict[str, Any]:
    """``record`` in the list form old nodes read, ``record2`` the map (tags, keys) that they ignore."""
    entry = {"record": record.to_wire(legacy=True), "status": status, "last_seen": last_seen}
    if record.version > 1:
        entry["record2"] = record.to_wire()
    return entry


def parse_entry(peer_id: object, value: object, now: float) -> PeerInfo | None:
    """The entry's meaning, or None if it is malformed or its record is not signed by that peer."""
    if not isinstance(peer_id, str) or not isinstance(value, dict):
        return None
    status, last_seen = value.get("status"), value.get("last_seen")
    if status not in STATUSES or isinstance(last_seen, bool) or not isinstance(last_seen, int | float):
        return None
    # the fresher of the two forms (a writer may pair an old map with a new list); the map on a tie
    records = [r for r in (_record(value.get("record2"), now), _record(value.get("record"), now)) if r]
    record = max(records, key=lambda r: r.seen) if records else None
    if record is None or record.peer_id != peer_id:
        return None
    return PeerInfo(
        peer_id,
        record.url,
        record.location,
        float(last_seen),
        str(status),
        record.private,
        record.relays,
        record.tags,
        record.x25519,
        record.topics,
        record.seen,
    )


def _record(raw: object, now: float) -> PeerRecord | None:
    if raw is None:
        return None
    try:
        return PeerRecord.from_wire(raw, now=now)
    except ValueError:
        return None


def mark_key(peer_id: str) -> tuple[str, str]:
    return (MARK, peer_id)


def subject(key: object) -> str | None:
    """The peer a registry key is about, or None for a key the registry does not have."""
    if isinstance(key, str):
        return key
    if isinstance(key, tuple) and len(key) == 2 and key[0] == MARK and isinstance(key[1], str):
        return key[1]
    return None


class Registry:
    """The registry map read per peer: its own entry (only as that peer wrote it) and the mark of others."""

    def __init__(self, crdt: LWWMap) -> None:
        self.crdt = crdt

    def subjects(self) -> list[str]:
        found = {subject(key) for key, _value in self.crdt.items()}
        return sorted(peer for peer in found if peer is not None)

    def fields(self, peer_id: str) -> tuple[Any, Any]:
        """The raw own entry (None unless the peer wrote it) and mark: what changed since a last look."""
        own = self.crdt.get(peer_id) if self.crdt.writer(peer_id) == peer_id else None
        return own, self.crdt.get(mark_key(peer_id))

    def info(self, peer_id: str, now: float) -> PeerInfo | None:
        own_value, mark_value = self.fields(peer_id)
        own, mark = parse_entry(peer_id, own_value, now), parse_entry(peer_id, mark_value, now)
        if own is None or mark is None:
            return own or mark
        signed = mark if mark.signed_at > own.signed_at else own
        later = own.status == LEFT or self.crdt.timestamp(peer_id) > self.crdt.timestamp(mark_key(peer_id))
        status = own.status if later else mark.status
        return replace(signed, status=status, last_seen=max(own.last_seen, mark.last_seen))

    def newest(self, peer_id: str) -> dict[str, Any] | None:
        """The raw field whose signed record is the newer, to write a mark from."""
        own, mark = self.fields(peer_id)
        if own is None or mark is None:
            return own or mark
        own_info, mark_info = parse_entry(peer_id, own, math.inf), parse_entry(peer_id, mark, math.inf)
        if own_info is None or (mark_info is not None and mark_info.signed_at > own_info.signed_at):
            return mark
        return own
