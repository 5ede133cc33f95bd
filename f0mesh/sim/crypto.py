"""Identities for simulated peers, and signature checks that skip the CPU cost but not the rule.

An Ed25519 verify (with the key recovered from the PeerId) costs ~0.3 ms in CPython; 10,000 peers
receiving every message about three times would spend most of a run in it. Origins still sign with
their real keys. ``fast_signatures()`` swaps the envelope module's ``verify`` for a memo of the
signatures simulated identities actually produced: a hit is, by construction, a valid signature
over exactly those bytes; anything else (a corrupted or forged envelope) falls through to the real
Ed25519 check. Outcomes are therefore the same as with real verification, only cheaper. The
``is_peer_id`` check in envelope decoding is memoised the same way (it is a pure function).

This is a monkeypatch of ``f0mesh.gossip.envelope`` for the duration of a simulation; the engine
itself is unchanged. An injectable verifier in GossipEngine would make it unnecessary.
"""

from __future__ import annotations

import contextlib
import functools
import random
from collections.abc import Iterator

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

import f0mesh.gossip.envelope as envelope_module
from f0mesh.identity import Identity
from f0mesh.identity import is_peer_id as real_is_peer_id
from f0mesh.identity import verify as real_verify

# (origin, signed bytes) -> signature, for every signature a SimIdentity produced
_SIGNED: dict[tuple[str, bytes], bytes] = {}


class SimIdentity(Identity):
    """A real Ed25519 identity, derived from a seed so a simulation's PeerIds are reproducible."""

    @classmethod
    def from_seed(cls, rng: random.Random) -> SimIdentity:
        return cls(Ed25519PrivateKey.from_private_bytes(rng.randbytes(32)))

    def sign(self, data: bytes) -> bytes:
        signature = super().sign(data)
        _SIGNED[(self.peer_id, data)] = signature
        return signature


def _memo_verify(peer_id: str, data: bytes, signature: bytes) -> None:
    if _SIGNED.get((peer_id, data)) != signature:
        real_verify(peer_id, data, signature)


_memo_is_peer_id = functools.lru_cache(maxsize=1 << 17)(real_is_peer_id)


@contextlib.contextmanager
def fast_signatures(enabled: bool = True) -> Iterator[None]:
    """Within the block, envelope checks use the memo above; restored (and the memo cleared) after."""
    if not enabled:
        yield
        return
    saved = envelope_module.verify, envelope_module.is_peer_id
    envelope_module.verify, envelope_module.is_peer_id = _memo_verify, _memo_is_peer_id
    try:
        yield
    finally:
        envelope_module.verify, envelope_module.is_peer_id = saved
        _SIGNED.clear()
        _memo_is_peer_id.cache_clear()
