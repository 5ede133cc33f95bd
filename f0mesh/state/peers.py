"""The peer registry as a replicated LWW map: PeerId -> {record, status, last_seen}.

Each entry carries the peer's own signed PeerRecord, so whoever writes or relays an entry cannot point an
id at a URL of its choosing: an entry whose record does not verify is ignored. Status and last_seen are
the writer's observation (Serf-like membership): "alive" while the peer refreshes its own entry or is seen
in peer exchange, "left" once it announced a clean shutdown, "gone" once nobody heard of it for a while.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from f0mesh.peer_record import PeerRecord

PEERS_DOC = "peers"
ALIVE = "alive"
LEFT = "left"
GONE = "gone"
STATUSES = frozenset({ALIVE, LEFT, GONE})


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
    )


def _record(raw: object, now: float) -> PeerRecord | None:
    if raw is None:
        return None
    try:
        return PeerRecord.from_wire(raw, now=now)
    except ValueError:
        return None
