"""The transport the engine is written against, and an in-memory network for tests and simulation.

The engine sees only neighbours() and send(); the transport calls back on_message and the
neighbour up/down hooks. So one engine runs over real WebRTC links (rtc's LinkManager adapts) or
over MemoryNetwork, which adds loss and link removal on demand.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections import Counter
from enum import StrEnum
from typing import Any, Protocol

import msgpack

log = logging.getLogger(__name__)


# protocol limits, the same for every peer whatever its own batching parameters
MAX_ENVELOPES_PER_MESSAGE = 1024
MAX_IDS_PER_MESSAGE = 5000  # GossipSub's MaxIHaveLength


class MessageType(StrEnum):
    """The "type" of every dict the engine exchanges with a neighbour.

    {"type": "msgs",  "msgs": [wire envelope bytes, ...]}   envelopes, batched per neighbour
    {"type": "ack",   "ids": [message id, ...]}             committed (or already had) these
    {"type": "ihave", "ids": [message id, ...]}             repair digest: I hold these
                      (+ "catchup": true: and offer me yours; see Repair.on_neighbour_up)
    {"type": "iwant", "ids": [message id, ...]}             repair request: send me these
                      (+ "dontwant": [message id, ...]: I hold these large ones, do not push them;
                       IDONTWANT rides an ack, whose extra keys a previous wire version ignores)
    """

    MSGS = "msgs"
    ACK = "ack"
    IHAVE = "ihave"
    IWANT = "iwant"


class GossipTransport(Protocol):
    def neighbours(self) -> list[str]:
        """PeerIds with a live link now."""

    async def send(self, peer_id: str, message: dict[str, Any]) -> None:
        """Send one msgpack-encodable dict; raises if there is no live link to peer_id."""


CONTROL = "control"  # the sent-message label of an IHAVE without ids: subscriptions, GRAFT, PRUNE


class CountingTransport:
    """Counts what the engine hands a transport, by message type: an idle node's cost is mostly the
    number of these (each one at least a DTLS-encrypted SCTP packet and its SACK on a real link)."""

    def __init__(self, inner: GossipTransport, counts: Counter[str]) -> None:
        self._inner = inner
        self._counts = counts
        self.neighbours = inner.neighbours

    async def send(self, peer_id: str, message: dict[str, Any]) -> None:
        kind = message.get("type")
        if kind == MessageType.IHAVE and not message.get("ids") and "catchup" not in message:
            kind = CONTROL
        await self._inner.send(peer_id, message)
        self._counts[str(kind)] += 1


class GossipEndpoint(Protocol):
    """What a transport delivers to: GossipEngine implements it."""

    async def on_message(self, from_peer: str, message: dict[str, Any]) -> None: ...

    async def on_neighbour_up(self, peer_id: str) -> None: ...

    async def on_neighbour_down(self, peer_id: str) -> None: ...


class LinkClosedError(ConnectionError):
    pass


_CLOSE = object()  # queued by disconnect to wake the pump


class _Link:
    """One direction of a link: an ordered queue drained by one task, as a reliable channel is."""

    def __init__(self, network: MemoryNetwork, src: str, dst: str) -> None:
        self.queue: asyncio.Queue[Any] = asyncio.Queue()
        self.closed = False
        self.task = asyncio.create_task(network._pump(self, src, dst), name=f"memlink-{src[-6:]}-{dst[-6:]}")


class MemoryNetwork:
    """Links between in-process endpoints. ``loss`` drops that fraction of messages silently.

    Messages are msgpack round-tripped on send, so a test catches anything a real link could not
    carry, and receivers never share objects with senders.
    """

    def __init__(
        self, *, loss: float = 0.0, rng: random.Random | None = None, max_message_bytes: int = 1 << 20
    ) -> None:
        if not 0.0 <= loss < 1.0:
            raise ValueError("loss must be in [0, 1)")
        self.loss = loss
        self.max_message_bytes = max_message_bytes
        self._rng = rng or random.Random()
        self._endpoints: dict[str, GossipEndpoint] = {}
        self._links: dict[tuple[str, str], _Link] = {}
        self._in_flight = 0
        self._activity = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self.delivered = 0
        self.dropped = 0

    def transport(self, peer_id: str) -> MemoryTransport:
        return MemoryTransport(self, peer_id)

    def attach(self, peer_id: str, endpoint: GossipEndpoint) -> None:
        self._endpoints[peer_id] = endpoint

    def detach(self, peer_id: str) -> None:
        self._endpoints.pop(peer_id, None)

    def neighbours(self, peer_id: str) -> list[str]:
        return sorted(dst for (src, dst) in self._links if src == peer_id)

    async def connect(self, a: str, b: str) -> None:
        """Open a link (both directions) and tell both attached endpoints."""
        if a == b or (a, b) in self._links:
            return
        self._links[(a, b)] = _Link(self, a, b)
        self._links[(b, a)] = _Link(self, b, a)
        for here, there in ((a, b), (b, a)):
            endpoint = self._endpoints.get(here)
            if endpoint is not None:
                await endpoint.on_neighbour_up(there)

    async def disconnect(self, a: str, b: str) -> None:
        """Close a link; what is still queued on it is lost, as on a dead connection."""
        found = False
        for key in ((a, b), (b, a)):
            link = self._links.pop(key, None)
            if link is not None:
                found = True
                link.closed = True
                link.queue.put_nowait(_CLOSE)  # wakes the pump, which then discards the rest
        if not found:
            return
        for here, there in ((a, b), (b, a)):
            endpoint = self._endpoints.get(here)
            if endpoint is not None:
                await endpoint.on_neighbour_down(there)

    async def isolate(self, peer_id: str) -> None:
        for other in self.neighbours(peer_id):
            await self.disconnect(peer_id, other)

    async def settle(self, timeout: float, quiet_s: float = 0.05) -> None:
        """Wait until no message has been in flight for quiet_s (engines' timers included).

        Raises TimeoutError after ``timeout`` seconds.
        """
        async with asyncio.timeout(timeout):
            while True:
                await self._idle.wait()
                before = self._activity
                await asyncio.sleep(quiet_s)
                if self._in_flight == 0 and self._activity == before:
                    return

    async def close(self) -> None:
        for link in self._links.values():
            link.task.cancel()
        await asyncio.gather(*(link.task for link in self._links.values()), return_exceptions=True)
        self._links.clear()

    async def _send(self, src: str, dst: str, message: dict[str, Any]) -> None:
        link = self._links.get((src, dst))
        if link is None or link.closed:
            raise LinkClosedError(f"no link {src} -> {dst}")
        raw = msgpack.packb(message, use_bin_type=True)
        if len(raw) > self.max_message_bytes:
            raise ValueError(f"message of {len(raw)} bytes exceeds the link's {self.max_message_bytes}")
        self._activity += 1
        if self.loss and self._rng.random() < self.loss:
            self.dropped += 1
            return
        self._in_flight += 1
        self._idle.clear()
        link.queue.put_nowait(msgpack.unpackb(raw, raw=False))

    async def _pump(self, link: _Link, src: str, dst: str) -> None:
        while True:
            message = await link.queue.get()
            if link.closed:
                self._discard(link, message)
                return
            try:
                endpoint = self._endpoints.get(dst)
                if endpoint is not None:
                    await endpoint.on_message(src, message)
                    self.delivered += 1
            except Exception:
                log.exception("endpoint %s failed on a message from %s", dst, src)
            finally:
                self._done()

    def _discard(self, link: _Link, first: Any) -> None:
        pending = [first]
        while not link.queue.empty():
            pending.append(link.queue.get_nowait())
        for message in pending:
            if message is not _CLOSE:  # the wake-up sentinel was never counted
                self._done()

    def _done(self) -> None:
        self._in_flight -= 1
        self._activity += 1
        if self._in_flight == 0:
            self._idle.set()


class MemoryTransport:
    """One peer's view of a MemoryNetwork; satisfies GossipTransport."""

    def __init__(self, network: MemoryNetwork, peer_id: str) -> None:
        self._network = network
        self.peer_id = peer_id

    def neighbours(self) -> list[str]:
        return self._network.neighbours(self.peer_id)

    async def send(self, peer_id: str, message: dict[str, Any]) -> None:
        await self._network._send(self.peer_id, peer_id, message)
