"""The peer store: verified peer records learned by peer exchange, the node's dial candidates.

Peer exchange is how a neighbour can make this node spend effort (dials, HTTP requests, rows), so the
store holds at most ``capacity`` records, and when full it evicts the least trusted subject, then the
one verified longest ago. Only verified records enter (PeerRecord.from_wire checks the signature) and
only if the address policy does not already refuse the URL's literal address: a host name is judged
when it is dialled, because resolving names a stranger chose would be a request of its choosing too.
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from f0mesh.address_policy import AddressPolicy
from f0mesh.peer_record import PeerRecord


@dataclass(slots=True)
class Candidate:
    record: PeerRecord
    verified_at: float
    source: str


def url_allowed(policy: AddressPolicy, url: str) -> bool:
    """False when the URL is not http(s) or names a literal address the policy refuses."""
    try:
        parts = urlsplit(url)
        host, _ = parts.hostname, parts.port
    except ValueError:
        return False
    if parts.scheme not in ("http", "https") or not host or parts.username or parts.password:
        return False
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return True
    return policy.allows_ip(host)


class PeerStore:
    def __init__(
        self,
        capacity: int,
        *,
        scores: Callable[[], Mapping[str, float]],
        on_evict: Callable[[str], None] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.capacity = capacity
        self._scores = scores
        self._on_evict = on_evict
        self._clock = clock
        self._entries: dict[str, Candidate] = {}
        self.evicted = 0

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, peer_id: object) -> bool:
        return peer_id in self._entries

    def get(self, peer_id: str) -> PeerRecord | None:
        entry = self._entries.get(peer_id)
        return entry.record if entry else None

    def records(self) -> list[PeerRecord]:
        return [entry.record for entry in self._entries.values()]

    def add(self, record: PeerRecord, source: str) -> bool:
        """Keep ``record`` if it is news; False when it is stale or loses to every record held."""
        now = self._clock()
        known = self._entries.get(record.peer_id)
        if known is not None:
            if known.record.seen >= record.seen:
                return False
            self._entries[record.peer_id] = Candidate(record, now, source)
            return True
        if len(self._entries) >= self.capacity:
            scores = self._scores()
            victim = min(
                self._entries, key=lambda pid: (scores.get(pid, 0.0), self._entries[pid].verified_at)
            )
            if scores.get(victim, 0.0) > scores.get(record.peer_id, 0.0):
                return False
            self.remove(victim)
            self.evicted += 1
            if self._on_evict is not None:
                self._on_evict(victim)
        self._entries[record.peer_id] = Candidate(record, now, source)
        return True

    def remove(self, peer_id: str) -> None:
        self._entries.pop(peer_id, None)
