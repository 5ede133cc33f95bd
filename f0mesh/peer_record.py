"""Signed peer records for peer exchange: a peer's id, URL and a timestamp, signed by that peer.

Because each record is signed by the peer it describes, a neighbour can pass records on without
being able to point an id at a URL of its choosing; the timestamp orders a peer's records and
tells how fresh the news is.

A private node (``--no-public-url``) adds a sixth element, ``{"private": true, "relays": [PeerId...]}``,
covered by the signature: its URL takes no offers, and the relays are neighbours that can carry a
signed offer to it. Public records keep the five elements and signed bytes of v1, and a node from
before private mode refuses a six-element record as malformed: it drops it (one log line) and never
dials a private node's URL.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import msgpack

from f0mesh.errors import IdentityError, SignatureError
from f0mesh.identity import Identity, is_peer_id, verify

_DOMAIN = "f0mesh-peer-record-v1"
MAX_URL = 512
MAX_RELAYS = 8


@dataclass(frozen=True)
class PeerRecord:
    peer_id: str
    url: str
    seen: float
    location: str | None
    sig: bytes
    private: bool = False
    relays: tuple[str, ...] = ()

    def _extension(self) -> list[dict[str, Any]]:
        return [{"private": True, "relays": list(self.relays)}] if self.private else []

    def signed_bytes(self) -> bytes:
        return msgpack.packb([_DOMAIN, self.peer_id, self.url, self.seen, self.location, *self._extension()])

    @classmethod
    def create(
        cls,
        identity: Identity,
        url: str,
        location: str | None = None,
        *,
        private: bool = False,
        relays: tuple[str, ...] = (),
    ) -> PeerRecord:
        seen = round(time.time(), 3)
        relays = tuple(relays[:MAX_RELAYS]) if private else ()
        unsigned = cls(identity.peer_id, url, seen, location, b"", private, relays)
        return cls(
            identity.peer_id, url, seen, location, identity.sign(unsigned.signed_bytes()), private, relays
        )

    def to_wire(self) -> list[Any]:
        return [self.peer_id, self.url, self.seen, self.location, self.sig, *self._extension()]

    @classmethod
    def from_wire(cls, data: Any, *, now: float | None = None, max_future_s: float = 60.0) -> PeerRecord:
        """Decode and verify; raises ValueError with the reason for anything unacceptable."""
        if not isinstance(data, list) or len(data) not in (5, 6):
            raise ValueError("peer record is not a 5- or 6-element list")
        peer_id, url, seen, location, sig = data[:5]
        private, relays = (True, _relays(data[5])) if len(data) == 6 else (False, ())
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
        record = cls(peer_id, url, float(seen), location, sig, private, relays)
        try:
            verify(peer_id, record.signed_bytes(), sig)
        except (SignatureError, IdentityError) as exc:
            raise ValueError(f"peer record signature: {exc}") from exc
        return record


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
