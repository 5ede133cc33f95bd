from __future__ import annotations

import os
import stat

import pytest

from f0mesh.errors import IdentityError, SignatureError
from f0mesh.identity import Identity, is_peer_id, public_key_from_peer_id, verify


def test_sign_verify_round_trip_and_flipped_bit() -> None:
    ident = Identity.generate()
    sig = ident.sign(b"exact bytes")
    verify(ident.peer_id, b"exact bytes", sig)
    flipped = bytes([sig[0] ^ 1]) + sig[1:]
    with pytest.raises(SignatureError):
        verify(ident.peer_id, b"exact bytes", flipped)
    with pytest.raises(SignatureError):
        verify(ident.peer_id, b"exact bytez", sig)
    with pytest.raises(SignatureError):
        verify(Identity.generate().peer_id, b"exact bytes", sig)


def test_peer_id_is_self_certifying_and_url_safe() -> None:
    ident = Identity.generate()
    assert ident.peer_id.startswith("12D3KooW")
    assert ident.peer_id.isalnum()
    key = public_key_from_peer_id(ident.peer_id)
    assert key.public_bytes_raw() == ident.public_key.public_bytes_raw()
    assert is_peer_id(ident.peer_id)
    for bad in ("", "abc", ident.peer_id[:-1] + "0", "12D3KooW" + "l" * 44, ident.peer_id + "x"):
        assert not is_peer_id(bad)


def test_key_file_created_0600_and_reloaded(tmp_path) -> None:
    first = Identity.load_or_create(tmp_path)
    path = tmp_path / "identity.key"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert Identity.load_or_create(tmp_path).peer_id == first.peer_id


@pytest.mark.parametrize(
    "content, words",
    [
        (b"-----BEGIN OPENSSH PRIVATE KEY-----\n", "not an f0mesh identity key"),
        (b"f0mesh-ed25519-v1\nzz\n", "corrupt"),
        (b"f0mesh-ed25519-v1\nabcd\n", "corrupt"),
    ],
)
def test_corrupt_or_foreign_key_file_is_an_error_and_kept(tmp_path, content: bytes, words: str) -> None:
    path = tmp_path / "identity.key"
    path.write_bytes(content)
    with pytest.raises(IdentityError) as info:
        Identity.load_or_create(tmp_path)
    assert words in info.value.detail
    assert path.read_bytes() == content
