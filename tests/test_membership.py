"""Membership events from link changes and peer records (issue 22); the live failure is in tests/api."""

from __future__ import annotations

from typing import Any

from f0mesh.identity import Identity
from f0mesh.membership import Membership
from f0mesh.peer_record import PeerRecord


class Bus:
    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def publish(self, topic: str, data: dict[str, Any]) -> None:
        assert topic == "member"
        self.events.append(data)


def test_one_event_per_change_of_membership() -> None:
    bus = Bus()
    members = Membership(bus)  # type: ignore[arg-type]
    peer = Identity.generate()
    first = PeerRecord.create(peer, "http://127.0.0.1:9001")
    members.opened(peer.peer_id)
    members.opened(peer.peer_id)  # a second link to a member
    members.record(None, first)  # first heard of: not an update
    members.record(first, PeerRecord.create(peer, "http://127.0.0.1:9001"))  # only fresher
    members.record(first, PeerRecord.create(peer, "http://127.0.0.1:9002"))
    members.ended(peer.peer_id, failed=True, reason="no frame from the peer for 4.0 s (heartbeat)")
    members.ended(peer.peer_id, failed=False, reason="late close of an older link")
    members.opened(peer.peer_id)
    members.ended(peer.peer_id, failed=False, reason="peer left: shutting down")
    events = bus.events
    assert [(e["event"], e["peer_id"]) for e in events] == [
        (kind, peer.peer_id) for kind in ("joined", "updated", "failed", "joined", "left")
    ]
    assert events[1]["url"] == "http://127.0.0.1:9002" and "heartbeat" in events[2]["reason"]
    assert members.members == frozenset()
