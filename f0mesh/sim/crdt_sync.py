"""CRDT replicas on the simulated network: f0mesh.crdt LWWMap deltas with anti-entropy.

The protocol is the one f0mesh.state's ReplicatedState runs for each document, reduced to one LWW
map: when a link opens both ends send their version vector; a peer receiving a version vector
answers with ``delta_since`` it (and first with its own vector when asked to reply); a merge that
brought news starts, ``push_delay_s`` later, a round with every neighbour; every ``sync_interval_s``
a round with one random neighbour repairs what was lost. Deltas go unpaged and are not also
gossiped, so after a partition heals anti-entropy alone carries the other side's writes, which is
what the experiment measures.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable
from typing import Any

from f0mesh.crdt import HLC, LWWMap, VectorClock
from f0mesh.sim.network import SimNetwork

log = logging.getLogger(__name__)

VERSIONS = "state-versions"
DELTA = "state-delta"
PUSH_DELAY_S = 0.5  # StateParams.push_delay_s
SYNC_INTERVAL_S = 30.0  # StateParams.sync_interval_s
_EMPTY = LWWMap("empty")  # equality ignores the replica id, as f0mesh.state.documents.is_empty does
_TASKS: set[asyncio.Task[None]] = set()


class CrdtPeer:
    """One replica of the shared map, attached to the network as a GossipEndpoint."""

    def __init__(
        self,
        peer_id: str,
        network: SimNetwork,
        rng: random.Random,
        clock: Callable[[], float],
        *,
        on_news: Callable[[CrdtPeer], None] | None = None,
        push_delay_s: float = PUSH_DELAY_S,
        sync_interval_s: float = SYNC_INTERVAL_S,
    ) -> None:
        self.peer_id = peer_id
        self.map = LWWMap(peer_id)
        self.hlc = HLC(peer_id, clock=lambda: int(clock() * 1000))
        self._network = network
        self._rng = rng
        self._on_news = on_news
        self._push_delay_s = push_delay_s
        self._sync_interval_s = sync_interval_s
        self._push_due: asyncio.TimerHandle | None = None
        self._task: asyncio.Task[None] | None = None
        self.merges = 0

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._sync_loop())

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
        if self._push_due is not None:
            self._push_due.cancel()

    def write(self, key: str, value: Any) -> None:
        self.map.set(key, value, self.hlc.now())
        self._news()

    def version(self) -> VectorClock:
        return self.map.version()

    # GossipEndpoint

    async def on_message(self, from_peer: str, message: dict[str, Any]) -> None:
        kind = message.get("type")
        if kind == VERSIONS:
            theirs = VectorClock.from_dict(message["v"])
            if message.get("reply"):
                await self._send(from_peer, self._versions(reply=False))
            delta = self.map.delta_since(theirs)
            if delta != _EMPTY:
                await self._send(from_peer, {"type": DELTA, "d": delta.to_bytes()})
        elif kind == DELTA:
            delta = LWWMap.from_bytes(message["d"])
            before = self.map.version()
            stamps = [delta.timestamp(key) for key, _ in delta.items()]
            if stamps:
                self.hlc.update(max(stamps))  # type: ignore[type-var]
            self.map.merge(delta)
            self.merges += 1
            if self.map.version() != before:
                self._news()

    async def on_neighbour_up(self, peer_id: str) -> None:
        await self._send(peer_id, self._versions(reply=False))

    async def on_neighbour_down(self, peer_id: str) -> None:
        pass

    # anti-entropy

    def _versions(self, *, reply: bool) -> dict[str, Any]:
        return {"type": VERSIONS, "v": self.map.version().to_dict(), "reply": reply}

    def _news(self) -> None:
        if self._on_news is not None:
            self._on_news(self)
        if self._push_due is None:
            self._push_due = asyncio.get_running_loop().call_later(self._push_delay_s, self._push_now)

    def _push_now(self) -> None:
        self._push_due = None
        task = asyncio.get_running_loop().create_task(self._push_all())
        _TASKS.add(task)
        task.add_done_callback(_TASKS.discard)

    async def _push_all(self) -> None:
        message = self._versions(reply=True)
        for peer in self._network.neighbours(self.peer_id):
            await self._send(peer, message)

    async def _sync_loop(self) -> None:
        await asyncio.sleep(self._rng.uniform(0, self._sync_interval_s))
        while True:
            neighbours = self._network.neighbours(self.peer_id)
            if neighbours:
                await self._send(self._rng.choice(neighbours), self._versions(reply=True))
            await asyncio.sleep(self._sync_interval_s)

    async def _send(self, peer: str, message: dict[str, Any]) -> None:
        try:
            await self._network._send(self.peer_id, peer, message)
        except Exception as exc:  # link gone: the next round repairs
            log.debug("state message to %s not sent: %s", peer, exc)
