"""`validation`: how many inbound gossip envelopes one core validates and accepts per second, next to
how many bare Ed25519 signatures it verifies, on the same signed bytes.

f0mesh side: a real GossipEngine (in this process, so nothing but the pipeline runs on the core)
fed ``{"type": "msgs"}`` batches of 64 envelopes, as a neighbour's link delivers them: size check,
strict canonical decode, signature (PeerId -> key -> verify), replay window and HLC, seen-cache,
rate limits, then the accept path (audit row, write-behind commit into MemoryGossipStore, ack
queued). Rate limits are unlimited: a per-origin cap of 200 msgs/s would measure policy, not cost.
Baseline: ``Ed25519PublicKey.verify`` over the same signed bytes, keys loaded once beforehand.
Figures are per CPU-second of this thread (``time.thread_time``), which a busy neighbour stretches
far less than wall time.

Also what each engine alone spends per envelope (engine_budget, for `message_rate_crypto`), and the
per-op cost of signed replicated state (crdt_op_costs): each CRDT op carries its author's
Ed25519 signature, made on the local write and checked on every road in.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import time
from collections.abc import Iterator
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from f0mesh.crdt import HLC, LWWMap
from f0mesh.gossip import Envelope, GossipEngine, LinkClosedError, MemoryGossipStore
from f0mesh.identity import Identity, is_valid_signature, public_key_from_peer_id
from f0mesh.trust import RateLimiter
from f0mesh.trust.score_params import RateParams

ORIGINS = 16
BATCH = 64
PAYLOAD = "x" * 100
_HUGE = 1e12
UNLIMITED = RateParams(
    base_rate=_HUGE, min_rate=_HUGE, max_rate=_HUGE, base_burst=_HUGE, min_burst=_HUGE, max_burst=_HUGE
)


class _NoNeighbours:
    """A transport with no links: nothing is forwarded, acks go nowhere."""

    def neighbours(self) -> list[str]:
        return []

    async def send(self, peer_id: str, message: dict[str, Any]) -> None:
        raise LinkClosedError(f"no link to {peer_id}")


def make_envelopes(count: int) -> list[Envelope]:
    """``count`` envelopes from ORIGINS signers, round robin, as many origins would publish them."""
    identities = [Identity.generate() for _ in range(ORIGINS)]
    signers = [(identity, HLC(identity.peer_id)) for identity in identities]
    out = []
    for i in range(count):
        identity, clock = signers[i % ORIGINS]
        out.append(Envelope.create(identity, i // ORIGINS + 1, clock.now(), "bench", PAYLOAD, 8))
    return out


def _bench_engine() -> GossipEngine:
    """An engine with no neighbours, an in-memory store and no rate limits: only its own work counts."""
    return GossipEngine(
        Identity.generate(),
        _NoNeighbours(),
        MemoryGossipStore(),
        origin_limiter=RateLimiter(UNLIMITED),
        neighbour_limiter=RateLimiter(UNLIMITED),
    )


@contextlib.contextmanager
def _frozen_heap() -> Iterator[None]:
    """What was allocated so far out of the collector's way, as `f0mesh up` does after start
    (serve.py): otherwise every full collection walks the imports, a cost the node does not pay."""
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


async def _engine_pass(wires: list[bytes]) -> tuple[float, float]:
    """(CPU seconds, wall seconds) for a fresh engine to accept every envelope and commit it."""
    engine = _bench_engine()
    await engine.start()
    neighbour = Identity.generate().peer_id
    try:
        cpu0, wall0 = time.thread_time(), time.perf_counter()
        for start in range(0, len(wires), BATCH):
            await engine.on_message(neighbour, {"type": "msgs", "msgs": wires[start : start + BATCH]})
        await engine.flush()
        cpu, wall = time.thread_time() - cpu0, time.perf_counter() - wall0
        if engine.stats.delivered != len(wires):
            raise RuntimeError(f"engine accepted {engine.stats.delivered} of {len(wires)} envelopes")
    finally:
        await engine.stop()
    return cpu, wall


def _verify_pass(items: list[tuple[Ed25519PublicKey, bytes, bytes]]) -> tuple[float, float]:
    cpu0, wall0 = time.thread_time(), time.perf_counter()
    for key, signature, signed in items:
        key.verify(signature, signed)
    return time.thread_time() - cpu0, time.perf_counter() - wall0


def measure(count: int, repeats: int) -> dict[str, list[float]]:
    """Per-CPU-second and wall rates of both sides, repeats interleaved (alternating which goes first)."""
    envelopes = make_envelopes(count)
    wires = [e.encode() for e in envelopes]
    keys = {e.origin: public_key_from_peer_id(e.origin) for e in envelopes}
    items = [(keys[e.origin], e.signature, e.signed) for e in envelopes]
    out: dict[str, list[float]] = {"f0mesh": [], "baseline": [], "f0mesh_wall": [], "baseline_wall": []}

    def engine_side() -> None:
        cpu, wall = asyncio.run(_engine_pass(wires))
        out["f0mesh"].append(count / max(cpu, 1e-6))
        out["f0mesh_wall"].append(count / wall)

    def verify_side() -> None:
        cpu, wall = _verify_pass(items)
        out["baseline"].append(count / max(cpu, 1e-6))
        out["baseline_wall"].append(count / wall)

    for i in range(repeats):
        for step in (engine_side, verify_side) if i % 2 == 0 else (verify_side, engine_side):
            step()
    return out


async def _publish_pass(count: int) -> float:
    """CPU seconds for a fresh engine to publish ``count`` payloads (sign, store in memory, deliver)
    with as many in flight as the node admits, as `message_rate`'s sender does, but no link."""
    engine = _bench_engine()
    await engine.start()
    window = engine.params.max_pending_publishes // 2
    try:
        cpu0 = time.thread_time()
        for start in range(0, count, window):
            batch = min(window, count - start)
            await asyncio.gather(*(engine.publish("bench", PAYLOAD) for _ in range(batch)))
        await engine.flush()
        cpu = time.thread_time() - cpu0
        if engine.stats.published != count:
            raise RuntimeError(f"engine published {engine.stats.published} of {count} payloads")
        return cpu
    finally:
        await engine.stop()


def engine_budget(count: int) -> dict[str, float]:
    """CPU microseconds per envelope of each engine alone, in this thread, with no link and no SQL:
    the sender's publish (sign included) and the receiver's inbound pipeline (verify included), next
    to the sign and the verify themselves. What the engines spend beyond the crypto is a cost the
    real pipeline cannot go below, whatever its store and transport cost."""
    envelopes = make_envelopes(count)
    keys = {e.origin: public_key_from_peer_id(e.origin) for e in envelopes}
    private = Ed25519PrivateKey.generate()
    signed = [e.signed for e in envelopes]
    cpu0 = time.thread_time()
    for data in signed:
        private.sign(data)
    sign_s = time.thread_time() - cpu0
    cpu0 = time.thread_time()
    for e in envelopes:
        keys[e.origin].verify(e.signature, e.signed)
    verify_s = time.thread_time() - cpu0
    wires = [e.encode() for e in envelopes]
    with _frozen_heap():
        sender_s = asyncio.run(_publish_pass(count))
    with _frozen_heap():
        receiver_s, _wall = asyncio.run(_engine_pass(wires))
    per = 1e6 / count
    return {
        "sign_us": sign_s * per,
        "verify_us": verify_s * per,
        "sender_engine_us": sender_s * per,
        "receiver_engine_us": receiver_s * per,
    }


def crdt_op_costs(count: int) -> dict[str, float]:
    """CPU microseconds per op of a map delta of ``count`` ops (100-byte values): the author signing each
    op (as a local write does), a receiver decoding the delta and verifying each op (as every road in
    does), and the merge itself for scale."""
    identity = Identity.generate()
    clock = HLC(identity.peer_id)
    doc = LWWMap(identity.peer_id)
    for i in range(count):
        doc.set(f"key{i}", PAYLOAD, clock.now())
    context = "map/bench"
    cpu0 = time.thread_time()
    doc.sign_ops(identity.peer_id, context, identity.sign)
    sign_s = time.thread_time() - cpu0
    data = doc.to_bytes()
    cpu0 = time.thread_time()
    delta = LWWMap.from_bytes(data)
    decode_s = time.thread_time() - cpu0
    cpu0 = time.thread_time()
    valid = all(sig and is_valid_signature(o, b, sig) for o, _s, b, sig in delta.signed_ops(context))
    verify_s = time.thread_time() - cpu0
    assert valid
    cpu0 = time.thread_time()
    LWWMap("receiver").merge(delta)
    merge_s = time.thread_time() - cpu0
    per_op = 1e6 / count
    return {
        "sign_us": sign_s * per_op,
        "verify_us": verify_s * per_op,
        "decode_merge_us": (decode_s + merge_s) * per_op,
    }


def crypto_floor(count: int, payload: str, topic: str) -> float:
    """Ed25519 sign + verify pairs per CPU-second of this thread, over the signed bytes of ``count``
    envelopes as `Node.publish` makes them (one origin, ``payload`` on ``topic``), keys loaded:
    the least CPU any design with one signature per envelope and one receiver can spend."""
    private = Ed25519PrivateKey.generate()
    identity = Identity(private)
    public = private.public_key()
    clock = HLC(identity.peer_id)
    signed = [Envelope.create(identity, i + 1, clock.now(), topic, payload, 8).signed for i in range(count)]
    cpu0 = time.thread_time()
    for data in signed:
        public.verify(private.sign(data), data)
    return count / max(time.thread_time() - cpu0, 1e-6)
