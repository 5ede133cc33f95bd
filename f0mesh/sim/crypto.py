"""Identities for simulated peers, and signature checks that skip the CPU cost but not the rule.

An Ed25519 verify (with the key recovered from the PeerId) costs ~0.3 ms in CPython; 10,000 peers
receiving every message about three times would spend most of a run in it. Origins still sign with
their real keys. Within ``fast_signatures()`` every signature a simulated identity makes is
remembered, and ``memo_verify`` (the verifier SimMesh hands each GossipEngine) accepts exactly those:
a hit is, by construction, a valid signature over exactly those bytes; anything else (a corrupted or
forged envelope) falls through to the real Ed25519 check. Outcomes are therefore the same as with real
verification, only cheaper. Outside the block (or with ``enabled=False``) nothing is remembered and
every check is the real one.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Iterator

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from f0mesh.gossip.envelope import Envelope
from f0mesh.identity import Identity

# (origin, signed bytes) -> signature, for every signature a SimIdentity produced within a block
_SIGNED: dict[tuple[str, bytes], bytes] = {}
_blocks = 0


class SimIdentity(Identity):
    """A real Ed25519 identity, derived from a seed so a simulation's PeerIds are reproducible."""

    @classmethod
    def from_seed(cls, rng: random.Random) -> SimIdentity:
        return cls(Ed25519PrivateKey.from_private_bytes(rng.randbytes(32)))

    def sign(self, data: bytes) -> bytes:
        signature = super().sign(data)
        if _blocks:
            _SIGNED[(self.peer_id, data)] = signature
        return signature


def memo_verify(envelope: Envelope) -> None:
    """GossipEngine's verifier in a simulation: a remembered signature passes, anything else is checked."""
    if _SIGNED.get((envelope.origin, envelope.signed)) != envelope.signature:
        envelope.verify()


@contextlib.contextmanager
def fast_signatures(enabled: bool = True) -> Iterator[None]:
    """Within the block, simulated identities' signatures are remembered; forgotten after."""
    global _blocks
    if not enabled:
        yield
        return
    _blocks += 1
    try:
        yield
    finally:
        _blocks -= 1
        if not _blocks:
            _SIGNED.clear()
