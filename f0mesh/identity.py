"""Ed25519 identity and the self-certifying PeerId.

The PeerId is the libp2p encoding of an Ed25519 public key: base58btc of an identity multihash
over the protobuf ``PublicKey{Type: Ed25519, Data: key}``. The key is therefore recoverable from
the id alone, so any peer checks a signature with no lookup, and ids read like libp2p's
(``12D3KooW...``), which operators of such meshes already recognise.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

import base58
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from f0mesh.errors import IdentityError, SignatureError

# protobuf PublicKey{Type=Ed25519(1), Data=<32 bytes>} behind multihash identity(0x00, len 36)
_KEY_PREFIX = bytes([0x08, 0x01, 0x12, 0x20])
_MH_PREFIX = bytes([0x00, 0x24])
_KEY_FILE_MAGIC = b"f0mesh-ed25519-v1\n"
PEER_ID_LENGTH_RANGE = (40, 60)


def peer_id_from_public_key(public_key: Ed25519PublicKey) -> str:
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base58.b58encode(_MH_PREFIX + _KEY_PREFIX + raw).decode("ascii")


def public_key_from_peer_id(peer_id: str) -> Ed25519PublicKey:
    """Recover the public key from a PeerId; a malformed id raises IdentityError."""
    if not isinstance(peer_id, str) or not (
        PEER_ID_LENGTH_RANGE[0] <= len(peer_id) <= PEER_ID_LENGTH_RANGE[1]
    ):
        raise IdentityError(f"not a PeerId: {str(peer_id)[:80]!r}", code="bad_peer_id", status=400)
    return _decode_peer_id(peer_id)


@functools.lru_cache(maxsize=4096)
def _decode_peer_id(peer_id: str) -> Ed25519PublicKey:
    """Cached: every envelope names its origin twice (decode, verify) and a mesh has few origins;
    base58 decoding was ~8 % of a receiver's CPU. Errors are not cached."""
    try:
        data = base58.b58decode(peer_id.encode("ascii"))
    except (ValueError, UnicodeEncodeError) as exc:
        raise IdentityError(
            f"PeerId is not base58: {peer_id[:80]!r}", code="bad_peer_id", status=400
        ) from exc
    prefix = _MH_PREFIX + _KEY_PREFIX
    if len(data) != len(prefix) + 32 or not data.startswith(prefix):
        raise IdentityError(
            f"PeerId does not hold an Ed25519 key: {peer_id[:80]!r}", code="bad_peer_id", status=400
        )
    return Ed25519PublicKey.from_public_bytes(data[len(prefix) :])


def is_peer_id(value: str) -> bool:
    try:
        public_key_from_peer_id(value)
    except IdentityError:
        return False
    return True


def verify(peer_id: str, data: bytes, signature: bytes) -> None:
    """Check ``signature`` over exactly ``data`` by the key inside ``peer_id``; raise SignatureError."""
    key = public_key_from_peer_id(peer_id)
    try:
        key.verify(signature, data)
    except InvalidSignature as exc:
        raise SignatureError(f"signature does not verify for {peer_id}") from exc


def is_valid_signature(peer_id: str, data: bytes, signature: bytes) -> bool:
    try:
        verify(peer_id, data, signature)
    except (SignatureError, IdentityError):
        return False
    return True


class Identity:
    """A node's Ed25519 key pair. The private key never leaves this object except to its file."""

    def __init__(self, private_key: Ed25519PrivateKey) -> None:
        self._private_key = private_key
        self.public_key = private_key.public_key()
        self.peer_id = peer_id_from_public_key(self.public_key)

    @classmethod
    def generate(cls) -> Identity:
        return cls(Ed25519PrivateKey.generate())

    def sign(self, data: bytes) -> bytes:
        return self._private_key.sign(data)

    def __repr__(self) -> str:
        return f"Identity({self.peer_id})"

    @classmethod
    def load_or_create(cls, data_dir: str | os.PathLike[str]) -> Identity:
        """Load ``DATA_DIR/identity.key``, creating it (mode 0600) on first use.

        A corrupt or foreign file is an error, never silently replaced: replacing it would change
        the node's PeerId and orphan every trust edge other peers hold for it.
        """
        path = Path(data_dir) / "identity.key"
        if path.exists():
            return cls._load(path)
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        identity = cls.generate()
        raw = identity._private_key.private_bytes(
            serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
        )
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, _KEY_FILE_MAGIC + raw.hex().encode("ascii") + b"\n")
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
        return identity

    @classmethod
    def _load(cls, path: Path) -> Identity:
        try:
            content = path.read_bytes()
        except OSError as exc:
            raise IdentityError(f"cannot read identity key {path}: {exc.strerror}") from exc
        if not content.startswith(_KEY_FILE_MAGIC):
            raise IdentityError(
                f"{path} is not an f0mesh identity key (wrong header); refusing to replace it"
            )
        try:
            raw = bytes.fromhex(content[len(_KEY_FILE_MAGIC) :].decode("ascii").strip())
        except (ValueError, UnicodeDecodeError) as exc:
            raise IdentityError(f"{path} is corrupt (key is not hex); refusing to replace it") from exc
        if len(raw) != 32:
            raise IdentityError(f"{path} is corrupt (key has {len(raw)} bytes, expected 32)")
        mode = path.stat().st_mode & 0o777
        if mode & 0o077:
            os.chmod(path, 0o600)
        return cls(Ed25519PrivateKey.from_private_bytes(raw))
