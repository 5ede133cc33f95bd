"""Two GossipEngines on a MemoryNetwork, one publishing to the other: the engines' whole pipeline on
both sides (sign, commit, push, ack, decode, checks, commit, deliver) with no link and no SQL.

Repeatable where CPU time on this shared machine is not when counted in instructions, with Ed25519
stubbed out (``--stub``) so only the engines count, no linger and no ack timeout::

    for n in 500 2500; do valgrind --tool=callgrind --callgrind-out-file=/dev/null \\
        python -m bench.engine_pair $n --stub 2>&1 | grep Collected; done

(the difference / 2,000 is instructions per envelope). Without valgrind it prints CPU microseconds
per envelope of this process. ``--batch`` publishes through ``publish_many``, 60 payloads a call.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import time
from collections import deque
from collections.abc import Awaitable
from typing import Any

from bench.validation import PAYLOAD, UNLIMITED
from f0mesh.gossip import GossipEngine, GossipParams, MemoryGossipStore, MemoryNetwork
from f0mesh.identity import Identity
from f0mesh.trust import RateLimiter

TOPIC = "bench"
WINDOW = 64  # publishes in flight, as a busy sender has them
BATCH = 60
# no linger or flush timer and no ack timeout: the schedule, and so the count, depends on nothing timed
PARAMS = GossipParams(
    ack_timeout_s=600.0,
    batch_linger_s=0.0,
    write_flush_interval_s=0.0,
    heartbeat_s=3600.0,
    repair_interval_s=3600.0,
)


async def _as_node(publish: Awaitable[Any]) -> Any:
    """As Node.publish calls the engine: one coroutine around it, run as the caller's own task."""
    return await publish


async def run(count: int, *, stub: bool, batch: bool) -> float:
    """CPU seconds of this process for ``count`` envelopes, published until the receiver delivered all.
    ``stub`` skips the receiver's verify; signing is stubbed by the command line only, since that
    patches Identity for the whole process."""
    network = MemoryNetwork()
    limits: dict[str, Any] = {
        "origin_limiter": RateLimiter(UNLIMITED),
        "neighbour_limiter": RateLimiter(UNLIMITED),
    }
    if stub:
        limits["verifier"] = lambda envelope: None
    engines = []
    for identity in (Identity.generate(), Identity.generate()):
        engine = GossipEngine(
            identity, network.transport(identity.peer_id), MemoryGossipStore(), params=PARAMS, **limits
        )
        network.attach(identity.peer_id, engine)
        await engine.start()
        engines.append(engine)
    sender, receiver = engines
    await network.connect(sender.peer_id, receiver.peer_id)
    done = asyncio.Event()
    got = 0

    def count_one(_message: Any) -> None:
        nonlocal got
        got += 1
        if got >= count:
            done.set()

    receiver.subscribe(TOPIC, count_one)
    gc.collect()
    gc.freeze()  # as `f0mesh up` does after start
    pending: deque[asyncio.Future[Any]] = deque()
    cpu0 = time.process_time()
    if batch:
        for start in range(0, count, BATCH):
            if len(pending) >= 2:
                await pending.popleft()
            payloads = [PAYLOAD] * min(BATCH, count - start)
            pending.append(asyncio.ensure_future(_as_node(sender.publish_many(TOPIC, payloads))))
    else:
        for _ in range(count):
            if len(pending) >= WINDOW:
                await pending.popleft()
            pending.append(asyncio.ensure_future(_as_node(sender.publish(TOPIC, PAYLOAD))))
    for future in pending:
        await future
    await asyncio.wait_for(done.wait(), 120)
    for engine in engines:
        await engine.flush()
    await network.settle(30)  # the last acks delivered
    cpu = time.process_time() - cpu0
    if sender.pending_pushes:
        raise RuntimeError(f"{sender.pending_pushes} sends never acknowledged")
    for engine in engines:
        await engine.stop()
    await network.close()
    return cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("count", type=int)
    parser.add_argument("--stub", action="store_true", help="Ed25519 stubbed out: the engines alone")
    parser.add_argument("--batch", action="store_true", help=f"publish_many, {BATCH} payloads a call")
    args = parser.parse_args()
    if args.stub:
        Identity.sign = lambda self, data: b"\x01" * 64  # type: ignore[method-assign]
    cpu = asyncio.run(run(args.count, stub=args.stub, batch=args.batch))
    print(f"{1e6 * cpu / args.count:.1f} us of CPU per envelope, both engines")


if __name__ == "__main__":
    main()
