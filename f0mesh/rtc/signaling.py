"""Signed offers and answers.

Each side signs its SDP together with both PeerIds, a timestamp and a fresh nonce; the answer
also signs the offer's nonce. Both DTLS fingerprints are thereby bound to the two identities and
to this exchange, so a relay that swaps an SDP is caught and a captured signature cannot be
replayed (the libp2p WebRTC spec explains why one signed fingerprint alone is not enough).
"""

from __future__ import annotations

import base64
import secrets
import time
from collections import OrderedDict
from dataclasses import asdict, dataclass
from typing import Any

import msgpack

from f0mesh.errors import F0MeshError, IdentityError, PolicyError, RateLimitedError, SignatureError
from f0mesh.identity import Identity, verify

CLOCK_WINDOW_S = 60.0
NONCE_BYTES = 16
_DOMAIN = {"offer": "f0mesh-offer-v1", "answer": "f0mesh-answer-v1"}


class SignalingError(F0MeshError):
    code = "bad_signaling"
    status = 400


@dataclass(frozen=True)
class SignedDescription:
    """A signed offer or answer as it travels in JSON between workers."""

    type: str
    sdp: str
    from_peer: str
    from_url: str | None
    to_peer: str
    ts: float
    nonce: str
    offer_nonce: str | None
    sig: str

    def signed_bytes(self) -> bytes:
        return _signed_bytes(
            self.type,
            self.sdp,
            self.from_peer,
            self.from_url,
            self.to_peer,
            self.ts,
            self.nonce,
            self.offer_nonce,
        )

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["from"] = data.pop("from_peer")
        data["to"] = data.pop("to_peer")
        return data

    @classmethod
    def from_json(cls, data: Any, expected_type: str) -> SignedDescription:
        if not isinstance(data, dict):
            raise SignalingError("signed description must be a JSON object")
        fields = {
            "type": str,
            "sdp": str,
            "from": str,
            "to": str,
            "ts": (int, float),
            "nonce": str,
            "sig": str,
        }
        for name, kind in fields.items():
            if not isinstance(data.get(name), kind) or isinstance(data.get(name), bool):
                raise SignalingError(f"field {name!r} is missing or has the wrong type")
        if data["type"] != expected_type:
            raise SignalingError(f"expected a signed {expected_type}, got {data['type']!r}")
        from_url = data.get("from_url")
        if from_url is not None and not isinstance(from_url, str):
            raise SignalingError("field 'from_url' must be a string")
        offer_nonce = data.get("offer_nonce")
        if expected_type == "answer" and not isinstance(offer_nonce, str):
            raise SignalingError("an answer must carry the offer's nonce ('offer_nonce')")
        if len(data["nonce"]) > 64 or len(data["sig"]) > 200:
            raise SignalingError("nonce or signature field too long")
        return cls(
            type=data["type"],
            sdp=data["sdp"],
            from_peer=data["from"],
            from_url=from_url,
            to_peer=data["to"],
            ts=float(data["ts"]),
            nonce=data["nonce"],
            offer_nonce=offer_nonce if expected_type == "answer" else None,
            sig=data["sig"],
        )


def _signed_bytes(
    kind: str,
    sdp: str,
    from_peer: str,
    from_url: str | None,
    to_peer: str,
    ts: float,
    nonce: str,
    offer_nonce: str | None,
) -> bytes:
    return msgpack.packb([_DOMAIN[kind], sdp, from_peer, from_url, to_peer, ts, nonce, offer_nonce])


def sign_description(
    identity: Identity,
    kind: str,
    sdp: str,
    to_peer: str,
    from_url: str | None,
    offer_nonce: str | None = None,
) -> SignedDescription:
    ts = round(time.time(), 3)
    nonce = secrets.token_urlsafe(NONCE_BYTES)
    sig = identity.sign(_signed_bytes(kind, sdp, identity.peer_id, from_url, to_peer, ts, nonce, offer_nonce))
    return SignedDescription(
        kind,
        sdp,
        identity.peer_id,
        from_url,
        to_peer,
        ts,
        nonce,
        offer_nonce,
        base64.urlsafe_b64encode(sig).decode("ascii"),
    )


class NonceCache:
    """Nonces seen inside the clock window; bounded, so a flood is refused rather than remembered."""

    def __init__(self, window_s: float = CLOCK_WINDOW_S, max_entries: int = 20000) -> None:
        self.window_s = window_s
        self.max_entries = max_entries
        self._seen: OrderedDict[str, float] = OrderedDict()

    def _expire(self, now: float) -> None:
        horizon = now - 2 * self.window_s
        while self._seen:
            at = next(iter(self._seen.values()))
            if at >= horizon:
                break
            self._seen.popitem(last=False)

    def check(self, nonce: str, now: float) -> None:
        self._expire(now)
        if nonce in self._seen:
            raise PolicyError("replayed nonce: this signed description was already used", code="replay")
        if len(self._seen) >= self.max_entries:
            raise RateLimitedError("too many signaling attempts in the clock window")

    def add(self, nonce: str, now: float) -> None:
        self._seen[nonce] = now


def verify_description(
    desc: SignedDescription,
    *,
    me: str,
    nonces: NonceCache,
    now: float | None = None,
    window_s: float = CLOCK_WINDOW_S,
) -> None:
    """Signature, target, freshness and replay checks, in that order; raises a 403 with the reason."""
    now = time.time() if now is None else now
    try:
        sig = base64.urlsafe_b64decode(desc.sig.encode("ascii"))
    except (ValueError, UnicodeEncodeError) as exc:
        raise SignatureError("signature is not base64url") from exc
    try:
        verify(desc.from_peer, desc.signed_bytes(), sig)
    except IdentityError as exc:
        raise SignatureError(f"'from' is not a valid PeerId: {exc.detail}") from exc
    if desc.to_peer != me:
        raise PolicyError(f"signed for {desc.to_peer}, not for this node ({me})", code="wrong_target")
    if desc.from_peer == me:
        raise PolicyError("a node does not link to itself", code="self_dial")
    skew = now - desc.ts
    if abs(skew) > window_s:
        raise PolicyError(
            f"timestamp is {skew:+.1f} s from this node's clock (window ±{window_s:.0f} s): stale or skewed",
            code="stale",
        )
    nonces.check(desc.nonce, now)
