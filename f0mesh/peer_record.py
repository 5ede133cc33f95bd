"""Signed peer records for peer exchange: a peer's id, URL and a timestamp, signed by that peer.

Because each record is signed by the peer it describes, a neighbour can pass records on without
being able to point an id at a URL of its choosing; the timestamp orders a peer's records and
tells how fresh the news is.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import msgpack

from f0mesh.errors import IdentityError, SignatureError
from f0mesh.identity import Identity, verify

_DOMAIN = "f0mesh-peer-record-v1"
MAX_URL = 512


@dataclass(frozen=True)
class PeerRecord:
    peer_id: str
    url: str
    seen: float
    location: str | None
    sig: bytes

    def signed_bytes(self) -> bytes:
        return msgpack.packb([_DOMAIN, self.peer_id, self.url, self.seen, self.location])

    @classmethod
    def create(cls, identity: Identity, url: str, location: str | None = None) -> PeerRecord:
        seen = round(time.time(), 3)
        unsigned = cls(identity.peer_id, url, seen, location, b"")
        return cls(identity.peer_id, url, seen, location, identity.sign(unsigned.signed_bytes()))

    def to_wire(self) -> list[Any]:
        return [self.peer_id, self.url, self.seen, self.location, self.sig]

    @classmethod
    def from_wire(cls, data: Any, *, now: float | None = None, max_future_s: float = 60.0) -> PeerRecord:
        """Decode and verify; raises ValueError with the reason for anything unacceptable."""
        if not isinstance(data, list) or len(data) != 5:
            raise ValueError("peer record is not a 5-element list")
        peer_id, url, seen, location, sig = data
        if not (isinstance(peer_id, str) and isinstance(url, str) and isinstance(sig, bytes)):
            raise ValueError("peer record fields have the wrong types")
        if not isinstance(seen, (int, float)) or isinstance(seen, bool):
            raise ValueError("peer record timestamp is not a number")
        if location is not None and (not isinstance(location, str) or len(location) > 64):
            raise ValueError("peer record location is malformed")
        if len(url) > MAX_URL or not url.startswith(("http://", "https://")):
            raise ValueError("peer record URL is not an http(s) URL")
        now = time.time() if now is None else now
        if seen > now + max_future_s:
            raise ValueError("peer record is dated in the future")
        record = cls(peer_id, url, float(seen), location, sig)
        try:
            verify(peer_id, record.signed_bytes(), sig)
        except (SignatureError, IdentityError) as exc:
            raise ValueError(f"peer record signature: {exc}") from exc
        return record
