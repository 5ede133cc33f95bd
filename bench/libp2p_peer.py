"""A py-libp2p gossipsub peer for the side-by-side benchmark; runs with bench/.libp2p-venv's python.

Not importable from the f0mesh environment (it needs ``libp2p`` and ``trio``, which f0mesh never
depends on); bench/pylibp2p.py starts it (not named libp2p.py: this script's folder comes first on
sys.path). One host on loopback TCP (Noise, yamux), gossipsub with
strict signing (Ed25519, as f0mesh's envelopes), subscribed to one topic. Driven by JSON lines on
stdin, each answered by one JSON line on stdout carrying the command's ``id``:

- ``connect {addr}`` -> ``setup_ms``: ``host.connect`` (TCP, multistream, Noise, yamux, identify)
- ``wait_mesh {peers, within}``: until the topic's gossipsub mesh has that many peers
- ``expect {count}``: answered once that many new messages were delivered to the subscription,
  with the host clock's time of the last one (``at``)
- ``publish {count, size, interval}``: ``count`` publishes of ``size``-byte payloads, answered with
  the time of the first (``t0``) and each message's key and publish time
- ``receipts``: first delivery time of every message key seen, and how many copies arrived
- ``disconnect {peer_id}``, ``quit``

Rate limits are raised like f0mesh's in the same bench (gossipsub's spam protection caps a topic at
10 msgs/s by default: a policy, not a cost); signature checks and validation still run.

    bench/.libp2p-venv/bin/python bench/libp2p_peer.py
"""

from __future__ import annotations

import json
import logging
import os
import struct
import sys
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import multiaddr
import trio
from libp2p import new_host
from libp2p.peer.id import ID
from libp2p.peer.peerinfo import info_from_p2p_addr
from libp2p.pubsub.gossipsub import PROTOCOL_ID, PROTOCOL_ID_V11, GossipSub
from libp2p.pubsub.pubsub import Pubsub
from libp2p.pubsub.rpc_queue import OutBoundQueueSize as OUTBOUND_QUEUE_SIZE
from libp2p.tools.anyio_service import background_trio_service

TOPIC = "bench.gossip"
HEARTBEAT_S = 1
MESH_POLL_S = 0.05
BACKPRESSURE_POLL_S = 0.001
BACKPRESSURE_MAX_WAITS = 10_000


class CountingPubsub(Pubsub):
    """Pubsub that reports every copy reaching ``push_msg`` (first or not: gossipsub's duplicates, as
    f0mesh audits them) and every hand-over to the subscription, as f0mesh's subscriber callback is
    called: the subscription's bounded channel drops what a reader has not taken yet, which would
    measure how soon trio schedules our reader rather than what the stack delivered."""

    def __init__(
        self,
        *args: Any,
        on_copy: Callable[[ID, Any], None],
        on_delivery: Callable[[Any], None],
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self._on_copy = on_copy
        self._on_delivery = on_delivery

    async def push_msg(self, msg_forwarder: ID, msg: Any) -> None:
        self._on_copy(msg_forwarder, msg)
        await super().push_msg(msg_forwarder, msg)

    def notify_subscriptions(self, publish_message: Any) -> None:
        self._on_delivery(publish_message)
        super().notify_subscriptions(publish_message)


class Peer:
    def __init__(self) -> None:
        self.host = new_host(listen_addrs=[multiaddr.Multiaddr("/ip4/127.0.0.1/tcp/0")])
        self.gossipsub = GossipSub(
            protocols=[PROTOCOL_ID_V11, PROTOCOL_ID],
            degree=6,
            degree_low=4,
            degree_high=12,
            heartbeat_interval=HEARTBEAT_S,
            spam_protection_enabled=False,
            max_messages_per_topic_per_second=1e9,
        )
        self.pubsub = CountingPubsub(
            self.host, self.gossipsub, strict_signing=True, on_copy=self._copy, on_delivery=self._delivered
        )
        self.delivered = 0
        self.expect: tuple[int, trio.Event] | None = None
        self.first_seen: dict[str, float] = {}
        self.copies: Counter[str] = Counter()
        self.out_lock = trio.Lock()

    def _copy(self, forwarder: ID, msg: Any) -> None:
        if forwarder != self.host.get_id():
            self.copies[msg.data[8:16].hex()] += 1

    def _delivered(self, msg: Any) -> None:
        self.first_seen.setdefault(msg.data[8:16].hex(), time.time())
        self.delivered += 1
        if self.expect is not None and self.delivered >= self.expect[0]:
            self.expect[1].set()

    async def drain(self, subscription: Any) -> None:
        while True:
            await subscription.get()

    async def reply(self, message: dict[str, Any]) -> None:
        async with self.out_lock:
            sys.stdout.write(json.dumps(message) + "\n")
            sys.stdout.flush()

    async def handle(self, cmd: dict[str, Any]) -> dict[str, Any]:
        op = cmd["cmd"]
        if op == "connect":
            t0 = time.perf_counter()
            await self.host.connect(info_from_p2p_addr(multiaddr.Multiaddr(cmd["addr"])))
            return {"setup_ms": (time.perf_counter() - t0) * 1000.0}
        if op == "disconnect":
            await self.host.disconnect(ID.from_base58(cmd["peer_id"]))
            return {}
        if op == "wait_mesh":
            for _ in range(int(float(cmd["within"]) / MESH_POLL_S)):
                if len(self.gossipsub.mesh.get(TOPIC, ())) >= int(cmd["peers"]):
                    break
                await trio.sleep(MESH_POLL_S)
            return {"mesh": len(self.gossipsub.mesh.get(TOPIC, ()))}
        if op == "expect":
            done = trio.Event()
            self.delivered = 0
            self.expect = (int(cmd["count"]), done)
            await done.wait()
            self.expect = None
            return {"at": time.time(), "got": self.delivered}
        if op == "publish":
            count, size, interval = int(cmd["count"]), int(cmd["size"]), float(cmd.get("interval", 0))
            pad = os.urandom(max(0, size - 16))
            sent = []
            t0 = time.time()
            for _ in range(count):
                await self.backpressure()
                key = os.urandom(8)
                at = time.time()
                await self.pubsub.publish(TOPIC, struct.pack(">d", at) + key + pad)
                sent.append([key.hex(), at])
                if interval:
                    await trio.sleep(interval)
            return {"t0": t0, "t1": time.time(), "sent": sent if interval else []}
        if op == "receipts":
            return {"first_seen": self.first_seen, "copies": dict(self.copies)}
        raise ValueError(f"unknown command {op!r}")

    async def backpressure(self) -> None:
        """Wait while any peer's outbound RPC queue is half full: gossipsub drops what does not fit
        (as go-libp2p does), so a publisher that wants every message delivered must pace itself,
        as f0mesh's sender waits on bufferedamountlow."""
        for _ in range(BACKPRESSURE_MAX_WAITS):
            if all(len(q) < OUTBOUND_QUEUE_SIZE // 2 for q in self.pubsub.peer_queues.values()):
                return
            await trio.sleep(BACKPRESSURE_POLL_S)

    async def serve(self) -> None:
        async with (
            self.host.run(listen_addrs=[multiaddr.Multiaddr("/ip4/127.0.0.1/tcp/0")]),
            background_trio_service(self.pubsub),
            background_trio_service(self.gossipsub),
            trio.open_nursery() as nursery,
        ):
            await self.pubsub.wait_until_ready()
            subscription = await self.pubsub.subscribe(TOPIC)
            nursery.start_soon(self.drain, subscription)
            addr = f"{self.host.get_addrs()[0]}"
            if "/p2p/" not in addr:
                addr += f"/p2p/{self.host.get_id().to_base58()}"
            await self.reply({"event": "ready", "addr": addr, "peer_id": self.host.get_id().to_base58()})
            stdin = trio.wrap_file(sys.stdin)
            while line := await stdin.readline():
                cmd = json.loads(line)
                if cmd["cmd"] == "quit":
                    break
                nursery.start_soon(self.run_one, cmd)
            nursery.cancel_scope.cancel()

    async def run_one(self, cmd: dict[str, Any]) -> None:
        try:
            result = await self.handle(cmd)
        except Exception as exc:
            await self.reply({"id": cmd.get("id"), "error": f"{type(exc).__name__}: {exc}"[:300]})
            return
        await self.reply({"id": cmd.get("id"), **result})


if __name__ == "__main__":
    logging.basicConfig(level=logging.ERROR, stream=sys.stderr)
    logging.getLogger("libp2p").setLevel(logging.ERROR)
    trio.run(Peer().serve)
