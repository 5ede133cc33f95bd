"""An f0mesh Node in a process of its own, plus bench-only routes that push traffic over a link.

The node has no bulk-transfer API, so this process builds the same Node and FastAPI app that
``f0mesh up`` runs and adds ``POST /bench/send`` and ``POST /bench/profile``. Two kinds of traffic:

- ``bytes``: raw ctl messages through ``link.framed``. The receiving node counts what its links
  deliver in handlers of its own ctl kinds (``bench.*``, registered with the node's ctl router like
  any part's), so the bytes cross wire encoding, FramedChannel batching, chunking and backpressure,
  aiortc, and on the far side reassembly, wire decoding and dispatch by the node.
- ``gossip``: ``Node.publish`` of small payloads (signed envelopes, stored, pushed with ack); the
  receiver counts them in a gossip subscription, i.e. after its full inbound pipeline accepted and
  committed them. Its per-origin and per-neighbour rate limits are raised through the node's
  configuration (they cap a single origin at 200 msgs/s by design, a policy rather than a cost; the
  checks themselves still run).
- ``gossip_batch``: the same envelopes through ``Node.publish_many``, half the publish window a call:
  still one signature, one store row and one audit row per envelope, but one call, task and commit
  wait per batch instead of per message, as an application with a backlog to send would publish.

    python -m bench.node_peer --data-dir DIR --port P --admin-token T
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from collections import deque
from dataclasses import replace
from pathlib import Path
from typing import Any

from bench.profiling import Sampler
from f0mesh import wire
from f0mesh.config import NodeConfig
from f0mesh.gossip import StoredMessage
from f0mesh.node import Node
from f0mesh.rtc.link import LinkState
from f0mesh.trust.score_params import RateParams
from f0mesh.trust.service import NODE_TRUST_PARAMS

DONE_TIMEOUT_S = 300.0
BENCH_TOPIC = "bench.gossip"
SYSTEM_HEADROOM = 8
_HUGE = 1e12
UNLIMITED = RateParams(
    base_rate=_HUGE, min_rate=_HUGE, max_rate=_HUGE, base_burst=_HUGE, min_burst=_HUGE, max_burst=_HUGE
)
BENCH_TRUST = replace(NODE_TRUST_PARAMS, origin_rate=UNLIMITED, neighbour_rate=UNLIMITED)


class Traffic:
    """Sender and counting receiver of the ``bench.*`` ctl kinds, registered with the node's router."""

    def __init__(self, node: Node) -> None:
        self.node = node
        self._rx: dict[str, list[Any]] = {}
        self._done: dict[str, asyncio.Future[int]] = {}
        for kind in ("bench.start", "bench.data", "bench.done"):
            node.ctl.register(kind, self.on_ctl)

    def attach(self) -> None:
        """After ``Node.start``: count bench gossip where the application would see it."""
        self.node.gossip.subscribe(BENCH_TOPIC, self._on_gossip)

    def _on_gossip(self, message: StoredMessage) -> None:
        rx = self._rx.get(message.origin)
        if rx is None or rx[0] not in ("gossip", "gossip_batch"):
            return
        rx[2] += 1
        if rx[2] >= rx[1]:
            del self._rx[message.origin]
            self._reply(message.origin, rx[2])

    def _reply(self, peer_id: str, got: int) -> None:
        link = self.node.links.get(peer_id)
        if link is not None:
            self.node.tasks.spawn(link.send({"t": "bench.done", "got": got}), name="bench-done")

    def on_ctl(self, peer: str, message: dict[str, Any]) -> None:
        kind = message["t"]
        if kind == "bench.start":
            self._rx[peer] = [message["kind"], int(message["expect"]), 0]
        elif kind == "bench.data":
            rx = self._rx.get(peer)
            if rx is None:
                return
            rx[2] += len(message["d"])
            if rx[2] >= rx[1]:
                del self._rx[peer]
                self._reply(peer, rx[2])
        elif kind == "bench.done":
            future = self._done.pop(peer, None)
            if future is not None and not future.done():
                future.set_result(int(message["got"]))

    async def send(self, peer_id: str, kind: str, total: int, size: int) -> float:
        """Seconds from the first message handed over until the receiver's ack of the last: ``total``
        bytes in ``size``-byte ctl messages (kind "bytes"), or ``total`` gossip publishes of a
        ``size``-byte payload (kind "gossip", or "gossip_batch" through publish_many)."""
        if kind not in ("bytes", "gossip", "gossip_batch"):
            raise ValueError(f"unknown traffic kind {kind!r}")
        link = self.node.links.get(peer_id)
        if link is None or link.state is not LinkState.OPEN:
            raise LookupError(f"no open link to {peer_id}")
        framed = link.framed
        payload = os.urandom(size)
        done = asyncio.get_running_loop().create_future()
        self._done[peer_id] = done
        await link.send({"t": "bench.start", "kind": kind, "expect": total})
        t0 = time.monotonic()
        if kind == "bytes":
            # Large messages one after another, as an application streaming a file would send them.
            count, rest = divmod(total, size)
            encoded = wire.encode({"t": "bench.data", "d": payload})
            for _ in range(count):
                await framed.send(encoded)
            if rest:
                await framed.send(wire.encode({"t": "bench.data", "d": payload[:rest]}))
        else:
            # Many publishes in flight at once, so the store writer, the per-neighbour outbox and the
            # framing layer can batch them; the node refuses (429) more than this many at a time,
            # its own system publishes (telemetry, trust) included: those get a few slots of headroom.
            text = payload.hex()[:size]  # a JSON string payload of ``size`` bytes
            window = self.node.gossip.params.max_pending_publishes - SYSTEM_HEADROOM
            pending: deque[asyncio.Future[Any]] = deque()
            if kind == "gossip":
                for _ in range(total):
                    if len(pending) >= window:
                        await pending.popleft()
                    pending.append(asyncio.ensure_future(self.node.publish(BENCH_TOPIC, text)))
            else:  # two batches in flight: one signs while the other waits for its commit
                batch = window // 2
                for start in range(0, total, batch):
                    if len(pending) >= 2:
                        await pending.popleft()
                    texts = [text] * min(batch, total - start)
                    pending.append(asyncio.ensure_future(self.node.publish_many(BENCH_TOPIC, texts)))
            for task in pending:
                await task
        await asyncio.wait_for(done, DONE_TIMEOUT_S)
        return time.monotonic() - t0


def serve(data_dir: Path, port: int, token: str) -> None:
    """``f0mesh up``'s own serve loop (f0mesh/serve.py), with the bench's ctl kinds and routes added."""
    from fastapi import FastAPI, HTTPException

    from f0mesh import serve as up

    sampler = Sampler()

    def extend(node: Node, app: FastAPI) -> None:
        traffic = Traffic(node)
        traffic.attach()

        @app.post("/bench/profile")
        async def bench_profile(body: dict[str, Any]) -> dict[str, Any]:
            """Start, or stop and summarise, a sampling profile of this whole process's event loop."""
            if body.get("action") == "start":
                sampler.start()
                return {"ok": True}
            return {"top": sampler.stop(int(body.get("top", 8)))}

        @app.post("/bench/send")
        async def bench_send(body: dict[str, Any]) -> dict[str, Any]:
            try:
                elapsed = await traffic.send(
                    body["peer"], body["kind"], int(body["total"]), int(body["size"])
                )
            except LookupError as exc:
                raise HTTPException(409, str(exc)) from exc
            except ValueError as exc:
                raise HTTPException(400, str(exc)) from exc
            return {"elapsed_s": elapsed}

    config = NodeConfig(data_dir=data_dir, port=port, admin_token=token, trust=BENCH_TRUST)
    up.run(config, "warning", extend=extend)


def main() -> None:
    from f0mesh.logs import setup_logging

    parser = argparse.ArgumentParser(prog="python -m bench.node_peer", description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--admin-token", required=True)
    args = parser.parse_args()
    setup_logging("warning")
    serve(args.data_dir, args.port, args.admin_token)


if __name__ == "__main__":
    main()
