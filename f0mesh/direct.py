"""Direct messages: one peer to one peer, signed end to end and encrypted to the addressee.

A message goes over the link to its addressee when there is one, else it floods the mesh as a
``direct`` ctl frame that every node forwards (never stores) until it reaches the addressee or its
hop budget runs out. The frame shows relays only its addressee, a random id and an ephemeral key:

    {"t": "direct", "id": 16 bytes, "to": PeerId, "hops": n, "eph": X25519 public, "ct": bytes}

``ct`` is ChaCha20-Poly1305 under HKDF(X25519(eph, addressee's key)), a key used once, with the
frame's id, addressee and ephemeral key as associated data. Inside, the sender's PeerId, a time,
a kind and the body, signed by the sender's Ed25519 key over the addressee and the frame id: a
relay can neither read, alter nor re-address it, and the addressee drops a repeated id or a time
outside the replay window. The addressee's X25519 key comes from its signed peer record; a node
derives its own from its Ed25519 key (a deterministic signature through HKDF), so it has no second
key file to lose.

Before flooding, a node tries the neighbours whose signed telemetry lists a link to the
addressee; a relay floods on only for addressees it holds a signed record of, so frames to made-up
PeerIds die at the first hop. What is bounded: the body (MAX_BODY), hops (MAX_HOPS), frames a
neighbour may hand this node to relay or read, and messages a sender may have read per second; the
ids seen, to drop floods' copies and replays, are a bounded recent set.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import msgpack
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from f0mesh.errors import F0MeshError, IdentityError, PeerError, SignatureError
from f0mesh.identity import Identity, is_peer_id, verify

FRAME = "direct"
MAX_BODY = 16 * 1024
MAX_FRAME_CT = MAX_BODY + 1024  # the body, the sender's id, time, kind and signature, and the tag
MAX_HOPS = 6
MAX_KIND = 16
REPLAY_WINDOW_S = 120.0
SEEN_MAX = 8192
DELIVERED_MAX = 16384  # ids of messages read, each kept for the replay window
SENDER_RATE, SENDER_BURST = 20.0, 40.0  # messages a second one sender may have this node read
RELAY_RATE, RELAY_BURST = 50.0, 100.0  # frames a second one neighbour may hand this node
_DOMAIN = b"f0mesh-direct-v1"
_NONCE = bytes(12)  # each key seals exactly one message


def x25519_key(identity: Identity) -> X25519PrivateKey:
    """The node's X25519 key, derived from its Ed25519 key: only that key can make this signature."""
    seed = HKDF(hashes.SHA256(), 32, salt=None, info=b"f0mesh-x25519-v1").derive(
        identity.sign(b"f0mesh-x25519-seed-v1")
    )
    return X25519PrivateKey.from_private_bytes(seed)


def public_bytes(key: X25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


class DirectDropped(F0MeshError):
    """A frame this node will not read or relay; ``code`` is the audit row's reason."""


@dataclass(frozen=True)
class Received:
    sender: str
    kind: str
    body: bytes
    sent_at: float
    frame_id: bytes


def _key(shared: bytes, eph: bytes, to: str) -> bytes:
    return HKDF(hashes.SHA256(), 32, salt=eph, info=_DOMAIN + to.encode()).derive(shared)


def _aad(frame_id: bytes, to: str, eph: bytes) -> bytes:
    return msgpack.packb([_DOMAIN, frame_id, to, eph], use_bin_type=True)


def _signed(to: str, frame_id: bytes, sender: str, sent_at: float, kind: str, body: bytes) -> bytes:
    return msgpack.packb([_DOMAIN, to, frame_id, sender, sent_at, kind, body], use_bin_type=True)


def _copy_key(message: dict[str, Any]) -> bytes:
    """A flood's copies are one frame; a tampered copy under the same id is another, so a neighbour
    that races a forgery ahead cannot make this node drop the real one as already seen."""
    digest = hashlib.blake2b(message["eph"] + message["ct"], digest_size=16).digest()
    return message["id"] + digest


def seal(identity: Identity, to: str, to_key: bytes, kind: str, body: bytes) -> dict[str, Any]:
    """A frame only ``to`` can open, that only ``identity`` can have sealed."""
    if len(body) > MAX_BODY:
        raise PeerError(f"a direct message body is at most {MAX_BODY} bytes", code="too_large", status=413)
    frame_id = os.urandom(16)
    sent_at = round(time.time(), 3)
    sig = identity.sign(_signed(to, frame_id, identity.peer_id, sent_at, kind, body))
    eph = X25519PrivateKey.generate()
    eph_pub = public_bytes(eph)
    key = _key(eph.exchange(X25519PublicKey.from_public_bytes(to_key)), eph_pub, to)
    plain = msgpack.packb([identity.peer_id, sent_at, kind, body, sig], use_bin_type=True)
    ct = ChaCha20Poly1305(key).encrypt(_NONCE, plain, _aad(frame_id, to, eph_pub))
    return {"t": FRAME, "id": frame_id, "to": to, "hops": MAX_HOPS, "eph": eph_pub, "ct": ct}


def check_frame(message: dict[str, Any]) -> tuple[bytes, str, int]:
    """The outer frame's id, addressee and hops, or DirectDropped: what a relay can check."""
    frame_id, to, hops = message.get("id"), message.get("to"), message.get("hops")
    eph, ct = message.get("eph"), message.get("ct")
    if not (isinstance(frame_id, bytes) and len(frame_id) == 16 and isinstance(to, str) and is_peer_id(to)):
        raise DirectDropped("direct frame has no 16-byte id or no addressee", code="direct_malformed")
    if not (isinstance(eph, bytes) and len(eph) == 32 and isinstance(ct, bytes)):
        raise DirectDropped("direct frame has no 32-byte key or no ciphertext", code="direct_malformed")
    if len(ct) > MAX_FRAME_CT:
        raise DirectDropped(f"direct frame is larger than {MAX_FRAME_CT} bytes", code="direct_too_large")
    if not isinstance(hops, int) or isinstance(hops, bool) or not 0 <= hops <= MAX_HOPS:
        raise DirectDropped(f"direct frame hops is not 0..{MAX_HOPS}", code="direct_malformed")
    return frame_id, to, hops


def open_frame(key: X25519PrivateKey, me: str, message: dict[str, Any], now: float) -> Received:
    """Decrypt and verify a frame addressed to ``me``; DirectDropped says why not."""
    frame_id, to, _ = check_frame(message)
    if to != me:
        raise DirectDropped("direct frame is not addressed to this node", code="direct_malformed")
    eph = message["eph"]
    try:
        shared = key.exchange(X25519PublicKey.from_public_bytes(eph))
        aead = ChaCha20Poly1305(_key(shared, eph, me))
        plain = aead.decrypt(_NONCE, message["ct"], _aad(frame_id, me, eph))
    except (InvalidTag, ValueError) as exc:
        raise DirectDropped("direct frame does not decrypt", code="direct_forged") from exc
    try:
        sender, sent_at, kind, body, sig = msgpack.unpackb(plain, raw=False)
    except Exception as exc:  # msgpack raises several unrelated types on garbage
        raise DirectDropped("direct message does not decode", code="direct_malformed") from exc
    if not (
        isinstance(sender, str)
        and isinstance(kind, str)
        and 0 < len(kind) <= MAX_KIND
        and isinstance(body, bytes)
        and isinstance(sig, bytes)
        and isinstance(sent_at, float)
    ):
        raise DirectDropped("direct message fields have the wrong types", code="direct_malformed")
    try:
        verify(sender, _signed(me, frame_id, sender, sent_at, kind, body), sig)
    except (SignatureError, IdentityError) as exc:
        raise DirectDropped(f"direct message signature: {exc.detail}", code="direct_forged") from exc
    if abs(now - sent_at) > REPLAY_WINDOW_S:
        raise DirectDropped("direct message is outside the replay window", code="direct_stale")
    return Received(sender, kind, body, sent_at, frame_id)


class _Bucket:
    def __init__(self, rate: float, burst: float) -> None:
        self.rate, self.burst = rate, burst
        self.tokens, self.at = burst, time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.at) * self.rate)
        self.at = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True


class _Buckets:
    """One token bucket per key, the least recently used forgotten past ``size``."""

    def __init__(self, rate: float, burst: float, size: int = 1024) -> None:
        self._rate, self._burst, self._size = rate, burst, size
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()

    def take(self, key: str) -> bool:
        bucket = self._buckets.pop(key, None) or _Bucket(self._rate, self._burst)
        self._buckets[key] = bucket
        if len(self._buckets) > self._size:
            self._buckets.popitem(last=False)
        return bucket.take()


Send = Callable[[str, dict[str, Any]], Awaitable[None]]
Handler = Callable[[Received], Awaitable[None] | None]


class DirectService:
    """Seals, routes, relays and opens direct frames; the node gives it its links and peers' keys.

    ``neighbours()`` lists the open links that understand direct frames, ``send(peer, frame)`` sends
    on one, ``key_of(peer)`` is a peer's X25519 key from its verified record (or None), and
    ``dropped(neighbour, reason, detail)`` writes the audit row of a frame dropped.
    """

    def __init__(
        self,
        identity: Identity,
        *,
        neighbours: Callable[[], list[str]],
        send: Send,
        key_of: Callable[[str], bytes | None],
        dropped: Callable[[str, str, str], None],
        toward: Callable[[str], list[str]] = lambda _peer: [],
        blocked: Callable[[str], bool] = lambda _peer: False,
    ) -> None:
        self.identity = identity
        self.key = x25519_key(identity)
        self.public_key = public_bytes(self.key)
        self._neighbours, self._send, self._key_of, self._dropped = neighbours, send, key_of, dropped
        self._toward, self._blocked = toward, blocked
        self._seen: OrderedDict[bytes, float] = OrderedDict()
        self._delivered: OrderedDict[bytes, float] = OrderedDict()
        self._senders = _Buckets(SENDER_RATE, SENDER_BURST)
        self._relays = _Buckets(RELAY_RATE, RELAY_BURST)
        self._handlers: dict[str, Handler] = {}
        self.relayed = 0
        self.delivered = 0

    def handler(self, kind: str, fn: Handler) -> None:
        if kind in self._handlers:
            raise ValueError(f"direct kind {kind!r} already has a handler")
        self._handlers[kind] = fn

    async def send(self, to: str, kind: str, body: bytes) -> str:
        """Seal and send; the frame id (hex). Over the link to ``to`` if open, else to every neighbour."""
        if to == self.identity.peer_id:
            raise PeerError("a direct message to this node itself", code="self_message", status=400)
        to_key = self._key_of(to)
        if to_key is None:
            raise PeerError(
                f"no signed record with an X25519 key is known for {to}", code="unknown_peer", status=404
            )
        frame = seal(self.identity, to, to_key, kind, body)
        self._remember(_copy_key(frame))
        targets = self._next_hops(to, exclude=None)
        if not targets:
            raise PeerError("this node has no link to send a direct message on", code="no_route", status=503)
        sent = 0
        for peer in targets:
            try:
                await self._send(peer, frame)
                sent += 1
            except Exception:  # one broken link must not stop the others
                continue
        if not sent:
            raise PeerError("no link took the direct message", code="no_route", status=503)
        return frame["id"].hex()

    async def on_frame(self, neighbour: str, message: dict[str, Any]) -> None:
        try:
            await self._on_frame(neighbour, message)
        except DirectDropped as exc:
            self._dropped(neighbour, exc.code, exc.detail)

    async def _on_frame(self, neighbour: str, message: dict[str, Any]) -> None:
        _, to, hops = check_frame(message)
        if not self._relays.take(neighbour):
            raise DirectDropped("this neighbour sends direct frames too fast", code="direct_rate")
        copy = _copy_key(message)
        if copy in self._seen:
            return  # a flood's other copy, or a replay: neither is news
        self._remember(copy)
        if to != self.identity.peer_id:
            await self._relay(neighbour, to, hops, message)
            return
        received = open_frame(self.key, self.identity.peer_id, message, time.time())
        self._admit(received.frame_id)
        if self._blocked(received.sender):
            raise DirectDropped(f"{received.sender} is blocked here", code="direct_blocked")
        if not self._senders.take(received.sender):
            raise DirectDropped(f"{received.sender} sends direct messages too fast", code="direct_rate")
        handler = self._handlers.get(received.kind)
        if handler is None:
            raise DirectDropped(f"no handler for direct kind {received.kind!r}", code="direct_kind")
        self.delivered += 1
        result = handler(received)
        if result is not None:
            await result

    async def _relay(self, neighbour: str, to: str, hops: int, message: dict[str, Any]) -> None:
        """Forward, never keep: to the addressee if linked, else on to every other neighbour."""
        if hops <= 0:
            return
        if self._key_of(to) is None:  # no signed record of it here: a made-up addressee, not flooded on
            raise DirectDropped(f"no record of the addressee {to} is known here", code="direct_no_route")
        targets = self._next_hops(to, exclude=neighbour)
        forward = {**message, "hops": hops - 1}
        self.relayed += 1
        for peer in targets:
            try:
                await self._send(peer, forward)
            except Exception:  # a neighbour gone mid-flood: the others still get it
                continue

    def _next_hops(self, to: str, exclude: str | None) -> list[str]:
        """The addressee if linked; else neighbours known to be linked to it; else every neighbour."""
        neighbours = [p for p in self._neighbours() if p != exclude]
        if to in neighbours:
            return [to]
        toward = [p for p in self._toward(to) if p in neighbours]
        return toward or neighbours

    def _admit(self, frame_id: bytes) -> None:
        """Each message is read once: its id is kept as long as its time passes the replay check,
        however many floods went by since; when that set is full, new messages wait, old ids stay."""
        now = time.monotonic()
        while self._delivered and next(iter(self._delivered.values())) < now:
            self._delivered.popitem(last=False)
        if frame_id in self._delivered:
            raise DirectDropped("direct message was already read", code="direct_replay")
        if len(self._delivered) >= DELIVERED_MAX:
            raise DirectDropped("too many direct messages in the replay window", code="direct_busy")
        self._delivered[frame_id] = now + 2 * REPLAY_WINDOW_S

    def _remember(self, frame_id: bytes) -> None:
        self._seen[frame_id] = time.monotonic()
        while len(self._seen) > SEEN_MAX:
            self._seen.popitem(last=False)
