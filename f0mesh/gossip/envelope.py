"""The signed gossip envelope and its wire form.

The origin signs the exact msgpack bytes of the signed part; those bytes travel unchanged and the
message id is their hash, so a forwarder can neither alter a message nor mint a new id for it.
Only ``hops`` sits outside the signature: every forwarder must increment it, and ``ttl`` (signed)
bounds it. Decoding is strict and canonical (one valid encoding per message), because anything a
peer sends is untrusted input.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable
from typing import Any, NamedTuple

import msgpack

from f0mesh.crdt import HLCTimestamp
from f0mesh.crdt.bounds import LOGICAL_BOUND
from f0mesh.errors import IdentityError, SignatureError
from f0mesh.gossip.errors import GossipReject, Reason
from f0mesh.identity import Identity, is_peer_id, verify

FORMAT_VERSION = 1
MAX_TOPIC_BYTES = 256
MAX_TTL = 255
MAX_PAYLOAD_DEPTH = 32
SIGNATURE_BYTES = 64
ID_CHARS = 32  # base32 of 160 bits of sha256: short, printable, collision-free in practice
_MAX_INT = 2**63 - 1


_B32 = "abcdefghijklmnopqrstuvwxyz234567"
# Each 5-bit digit to its base32 letter, as a bytes.translate table (values above 31 never occur)
_B32_TABLE = _B32.encode("ascii").ljust(256, b"\0")


def _spreads() -> tuple[tuple[int, int, int], ...]:
    """Masks that move the 160 bits of an id apart, halving the groups at each step (160 bits in a
    256-bit block, 80 in each 128, ... 5 in each byte), so each 5-bit digit ends in a byte of its own."""
    steps = []
    width, stride = 160, 256
    while width > 5:
        half, stride = width // 2, stride // 2
        low = sum(((1 << half) - 1) << block for block in range(0, 256, 2 * stride))
        steps.append((low, low << half, stride - half))
        width = half
    return tuple(steps)


(_L1, _H1, _S1), (_L2, _H2, _S2), (_L3, _H3, _S3), (_L4, _H4, _S4), (_L5, _H5, _S5) = _spreads()


def message_id(signed: bytes) -> str:
    """Lower-case base32 (RFC 4648, no padding) of the first 160 bits of sha256: the same string as
    ``base64.b32encode(...).lower()``, which is pure Python and was a visible cost per envelope. The
    digits are spread one to a byte by five mask-and-shift steps on one integer, then translated to
    letters in C: no lookup per digit. It runs once per envelope on every node."""
    n = int.from_bytes(hashlib.sha256(signed).digest()[:20], "big")
    n = (n & _L1) | ((n & _H1) << _S1)  # unrolled: a loop over the steps costs a sixth more
    n = (n & _L2) | ((n & _H2) << _S2)
    n = (n & _L3) | ((n & _H3) << _S3)
    n = (n & _L4) | ((n & _H4) << _S4)
    n = (n & _L5) | ((n & _H5) << _S5)
    return n.to_bytes(32, "big").translate(_B32_TABLE).decode("ascii")


def is_message_id(value: object) -> bool:
    """Checked for every id of every ack, IHAVE and IWANT: ``strip`` runs in C, a set per id did not."""
    return isinstance(value, str) and len(value) == ID_CHARS and not value.strip(_B32)


def canonical_payload(value: Any, depth: int = 0) -> Any:
    """The JSON value with dict keys sorted, so one payload always signs to the same bytes.

    A payload may also be bytes as a whole (msgpack bin), never inside a JSON value: the JSON API
    shows it as ``payload_b64``, which has no place inside a document. Raises ValueError for anything
    else JSON cannot carry (NaN, non-string keys, deep nesting).
    """
    if depth == 0 and isinstance(value, bytes):
        return value
    if depth > MAX_PAYLOAD_DEPTH:
        raise ValueError(f"payload nests deeper than {MAX_PAYLOAD_DEPTH} levels")
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int):
        if not -(2**63) <= value <= 2**64 - 1:
            raise ValueError("payload integer does not fit in 64 bits")
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError("payload float must be finite")
        return value
    if isinstance(value, list | tuple):
        return [canonical_payload(item, depth + 1) for item in value]
    if isinstance(value, dict):
        if not all(isinstance(key, str) for key in value):
            raise ValueError("payload object keys must be strings")
        return {key: canonical_payload(value[key], depth + 1) for key in sorted(value)}
    raise ValueError(f"payload holds a {type(value).__name__}, which is not a JSON value")


def _check_topic(topic: object) -> str:
    if not isinstance(topic, str) or not topic or not topic.isprintable():
        raise GossipReject(Reason.MALFORMED, "topic must be a non-empty printable string")
    if len(topic.encode("utf-8")) > MAX_TOPIC_BYTES:
        raise GossipReject(Reason.MALFORMED, f"topic is longer than {MAX_TOPIC_BYTES} bytes")
    return topic


def _is_uint(value: object, limit: int = _MAX_INT) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= limit


# One Packer for the module: ``msgpack.packb`` builds a new one per call, three or four times per
# envelope on each side. Packer.pack resets its buffer after each call, and on an error too.
_pack: Callable[[Any], bytes] = msgpack.Packer(use_bin_type=True).pack


def _no_ext(code: int, data: bytes) -> Any:
    raise ValueError(f"msgpack extension type {code} is not allowed")


def _unpack(raw: bytes) -> Any:
    return msgpack.unpackb(raw, raw=False, strict_map_key=True, ext_hook=_no_ext, timestamp=0)


class Envelope(NamedTuple):
    """One gossip message as decoded; ``signed`` is kept verbatim for forwarding and hashing.

    A tuple rather than a frozen dataclass: one is built per envelope on every node, and a frozen
    dataclass's ``__init__`` (an ``object.__setattr__`` per field) cost several times as much."""

    id: str
    origin: str
    seq: int
    hlc: HLCTimestamp
    topic: str
    ttl: int
    payload: Any
    signed: bytes
    signature: bytes
    hops: int

    @property
    def created_at(self) -> float:
        """The origin's HLC wall time in epoch seconds: what the replay window is measured on."""
        return self.hlc.wall_ms / 1000.0

    @classmethod
    def create(
        cls, identity: Identity, seq: int, hlc_ts: HLCTimestamp, topic: str, payload: Any, ttl: int
    ) -> Envelope:
        """Sign a new message; raises GossipReject(malformed) for a bad topic, payload or counter."""
        _check_topic(topic)
        if not _is_uint(seq) or seq == 0:
            raise GossipReject(Reason.MALFORMED, "seq must be a positive 63-bit integer")
        if not _is_uint(ttl, MAX_TTL):
            raise GossipReject(Reason.MALFORMED, f"ttl must be in 0..{MAX_TTL}")
        try:
            body = canonical_payload(payload)
        except ValueError as exc:
            raise GossipReject(Reason.MALFORMED, str(exc)) from exc
        signed = _pack(
            [FORMAT_VERSION, identity.peer_id, seq, hlc_ts.wall_ms, hlc_ts.logical, topic, ttl, body]
        )
        return cls(
            message_id(signed),
            identity.peer_id,
            seq,
            hlc_ts,
            topic,
            ttl,
            body,
            signed,
            identity.sign(signed),
            0,
        )

    @classmethod
    def decode(cls, raw: object, max_bytes: int | None = None) -> Envelope:
        """Parse a wire envelope; any deviation from the canonical form raises GossipReject.

        The signature is not checked here (see verify), so the pipeline can order its checks.
        """
        if not isinstance(raw, bytes):
            raise GossipReject(Reason.MALFORMED, "envelope must be bytes")
        if max_bytes is not None and len(raw) > max_bytes:
            raise GossipReject(Reason.TOO_LARGE, f"envelope is {len(raw)} bytes, limit {max_bytes}")
        try:
            outer = _unpack(raw)
            if not (isinstance(outer, list) and len(outer) == 3):
                raise ValueError("wire envelope must be [signed, signature, hops]")
            signed, signature, hops = outer
            if not (isinstance(signed, bytes) and isinstance(signature, bytes)):
                raise ValueError("signed part and signature must be binary")
            if len(signature) != SIGNATURE_BYTES:
                raise ValueError(f"signature must be {SIGNATURE_BYTES} bytes")
            fields = _unpack(signed)
            if not (isinstance(fields, list) and len(fields) == 8):
                raise ValueError("signed part must have 8 fields")
            version, origin, seq, wall_ms, logical, topic, ttl, payload = fields
            if version != FORMAT_VERSION or isinstance(version, bool):
                raise ValueError(f"unknown envelope version {version!r}")
            if not (isinstance(origin, str) and is_peer_id(origin)):
                raise ValueError("origin is not a PeerId")
            # `type(x) is int` is _is_uint's test (bool is not int's type), inlined: every envelope
            if not (
                type(seq) is int
                and type(wall_ms) is int
                and type(logical) is int
                and 0 < seq <= _MAX_INT
                and 0 <= wall_ms <= _MAX_INT
                and 0 <= logical <= LOGICAL_BOUND
            ):
                raise ValueError("seq, wall time or logical counter out of range")
            if not (type(ttl) is int and type(hops) is int and 0 <= hops <= ttl <= MAX_TTL):
                raise ValueError("hops must be within 0..ttl")
            _check_topic(topic)
            fields[7] = canonical_payload(payload)  # the unpacked list is ours: no copy to re-encode
            if _pack(fields) != signed:
                raise ValueError("signed part is not canonically encoded")
            hlc = HLCTimestamp(wall_ms, logical, origin)
        except GossipReject:
            raise
        except (ValueError, TypeError, RecursionError, msgpack.UnpackException) as exc:
            raise GossipReject(Reason.MALFORMED, str(exc)[:200]) from exc
        return cls(message_id(signed), origin, seq, hlc, topic, ttl, payload, signed, signature, hops)

    def verify(self) -> None:
        """Check the origin's signature over the signed bytes; raises GossipReject(bad_signature)."""
        try:
            verify(self.origin, self.signed, self.signature)
        except (SignatureError, IdentityError) as exc:
            raise GossipReject(Reason.BAD_SIGNATURE, f"signature of {self.id} does not verify") from exc

    def encode(self) -> bytes:
        return _pack([self.signed, self.signature, self.hops])

    def forwarded(self) -> bytes:
        """The wire form one hop further on; the signed bytes are reused, never re-encoded."""
        return _pack([self.signed, self.signature, self.hops + 1])
