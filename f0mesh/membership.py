"""Membership events: neighbours joining, leaving, failing, and peers whose signed record changed.

They go on the node's event bus as topic ``member`` (so /api/events?topic=member and ``f0mesh
monitor`` show them). A neighbour is a member from its first open link until its last link ends:
``left`` when the link was closed (by either side, with a reason), ``failed`` when it broke
(heartbeat silence, ICE or channel failure) — what a killed node looks like to its neighbours.
"""

from __future__ import annotations

from f0mesh.events import EventBus
from f0mesh.peer_record import PeerRecord

TOPIC = "member"


class Membership:
    def __init__(self, bus: EventBus) -> None:
        self._bus = bus
        self._members: set[str] = set()

    @property
    def members(self) -> frozenset[str]:
        return frozenset(self._members)

    def opened(self, peer_id: str) -> None:
        if peer_id not in self._members:
            self._members.add(peer_id)
            self._bus.publish(TOPIC, {"event": "joined", "peer_id": peer_id})

    def ended(self, peer_id: str, *, failed: bool, reason: str | None) -> None:
        """The peer's last link ended; a link replaced by a newer one is not an end."""
        if peer_id in self._members:
            self._members.discard(peer_id)
            event = "failed" if failed else "left"
            self._bus.publish(TOPIC, {"event": event, "peer_id": peer_id, "reason": reason})

    def record(self, old: PeerRecord | None, new: PeerRecord) -> None:
        """A newer signed record of a known peer: news when what it says changed, not its freshness."""
        if old is not None and (old.url, old.location) != (new.url, new.location):
            self._bus.publish(
                TOPIC,
                {"event": "updated", "peer_id": new.peer_id, "url": new.url, "location": new.location},
            )

    def tags_changed(self, peer_id: str, tags: dict[str, str]) -> None:
        """A peer's signed record now carries other tags (role, region, version)."""
        self._bus.publish(TOPIC, {"event": "updated", "peer_id": peer_id, "tags": dict(tags)})
