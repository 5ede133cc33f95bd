"""Pull-side repair (GossipSub's IHAVE/IWANT): what push lost, a digest exchange recovers.

Periodically a node offers one random neighbour the ids of its recent messages; the neighbour
asks for the ones it lacks and gets them. When a link comes up both sides offer everything still
within the replay window, which is how a node that was offline catches up: the store, not the
seen-cache, says what it already has, so a restart loses nothing.

Repair stays pairwise: envelopes received in answer to an IWANT are stored but not pushed on
(the neighbours run their own repair), or a rejoining node would echo the whole window to them.
They bypass the rate limits because this node asked for them, and it asks only for ids offered,
a bounded number per neighbour.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from f0mesh.gossip.envelope import Envelope, is_message_id
from f0mesh.gossip.errors import GossipReject, Reason
from f0mesh.gossip.params import GossipParams
from f0mesh.gossip.push import Pusher
from f0mesh.gossip.stats import GossipStats
from f0mesh.gossip.store import GossipStore
from f0mesh.gossip.transport import MAX_IDS_PER_MESSAGE, GossipTransport, MessageType

log = logging.getLogger(__name__)

MAX_RETRANSMISSIONS = 3  # copies of one message served to one neighbour (GossipSub's GossipRetransmission)


def check_ids(value: Any) -> list[str]:
    """A control message's id list, or GossipReject(malformed)."""
    if (
        not isinstance(value, list)
        or len(value) > MAX_IDS_PER_MESSAGE
        or not all(is_message_id(i) for i in value)
    ):
        raise GossipReject(
            Reason.MALFORMED, f"ids must be a list of at most {MAX_IDS_PER_MESSAGE} message ids"
        )
    return value


class Repair:
    def __init__(
        self,
        transport: GossipTransport,
        store: GossipStore,
        pusher: Pusher,
        params: GossipParams,
        stats: GossipStats,
        rng: random.Random,
        clock: Callable[[], float],
        knows: Callable[[str], bool],
    ) -> None:
        self._transport = transport
        self._store = store
        self._pusher = pusher
        self._params = params
        self._stats = stats
        self._rng = rng
        self._clock = clock
        self._knows = knows
        self._wanted: dict[str, tuple[str, float]] = {}  # id -> (neighbour asked, loop-time expiry)
        self._served: OrderedDict[tuple[str, str], int] = OrderedDict()  # (neighbour, id) -> copies sent
        self._offered_back: dict[str, float] = {}  # neighbour -> loop time of the last catch-up offered
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._loop(), name="gossip-repair")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def run_round(self) -> None:
        """Offer one random neighbour the ids of the messages created within repair_lookback."""
        self._stats.repair_rounds += 1
        self._expire()
        neighbours = self._transport.neighbours()
        if not neighbours:
            return
        peer = self._rng.choice(neighbours)
        since = self._clock() - self._params.repair_lookback_s
        ids = await self._store.ids_since(since, self._params.repair_digest_size)
        await self._offer(peer, ids)

    async def on_neighbour_up(self, peer: str, *, ask_back: bool = False) -> None:
        """Offer everything still within the replay window, in digest-size pages.

        Each end of a new link offers on its own. ``ask_back`` is for an engine starting behind a
        link that was already up: the neighbour offered when the link came up, to nobody, so the
        first page asks it to offer again.
        """
        since = self._clock() - self._params.replay_window_s
        ids = await self._store.ids_since(since, self._params.catchup_max_ids)
        size = self._params.repair_digest_size
        pages = [ids[start : start + size] for start in range(0, len(ids), size)] or [[]]
        for number, page in enumerate(pages):
            if number == 0 and ask_back:
                self._stats.ihave_sent += 1
                await self._send(peer, {"type": MessageType.IHAVE.value, "ids": page, "catchup": True})
            else:
                await self._offer(peer, page)

    def _may_offer_back(self, peer: str) -> bool:
        """At most one catch-up per neighbour per repair interval: each costs a window's digest."""
        now = asyncio.get_running_loop().time()
        last = self._offered_back.get(peer)
        if last is not None and now - last < self._params.repair_interval_s:
            return False
        self._offered_back[peer] = now
        return True

    def on_neighbour_down(self, peer: str) -> None:
        self._offered_back.pop(peer, None)
        for message_id in [m for m, (asked, _) in self._wanted.items() if asked == peer]:
            del self._wanted[message_id]

    def claim(self, peer: str, message_id: str) -> bool:
        """Whether this envelope answers an IWANT this node sent to that neighbour (and clear it)."""
        wanted = self._wanted.get(message_id)
        if wanted is None or wanted[0] != peer:
            return False
        del self._wanted[message_id]
        return True

    async def on_ihave(self, peer: str, raw_ids: Any, *, catchup: bool = False) -> None:
        """Ask for the offered ids this node lacks; ``catchup`` (see on_neighbour_up) offers back."""
        ids = check_ids(raw_ids)
        self._stats.ihave_received += 1
        if catchup and self._may_offer_back(peer):
            await self.on_neighbour_up(peer)
        self._expire()
        fresh = [i for i in dict.fromkeys(ids) if not self._knows(i) and i not in self._wanted]
        if not fresh:
            return
        lacking = await self._store.missing(fresh)
        asked_already = sum(1 for asked, _ in self._wanted.values() if asked == peer)
        budget = self._params.max_pending_iwant - asked_already
        lacking = [i for i in lacking if i not in self._wanted][: max(0, budget)]
        if not lacking:
            return
        expiry = asyncio.get_running_loop().time() + self._params.iwant_timeout_s
        for message_id in lacking:
            self._wanted[message_id] = (peer, expiry)
        self._stats.iwant_sent += len(lacking)
        await self._send(peer, {"type": MessageType.IWANT.value, "ids": lacking})

    async def on_iwant(self, peer: str, raw_ids: Any) -> None:
        ids = check_ids(raw_ids)
        self._stats.iwant_received += len(ids)
        allowed = [i for i in dict.fromkeys(ids) if self._count_served(peer, i)]
        raws = await self._store.get_raw(allowed)
        self._stats.memcache_misses += len(allowed) - len(raws)
        for message_id, raw in raws.items():
            try:
                envelope = Envelope.decode(raw)
            except GossipReject:
                log.error("stored envelope %s does not decode; not served", message_id)
                continue
            wire = envelope.forwarded() if envelope.hops < envelope.ttl else raw
            self._pusher.send_untracked(peer, message_id, wire)
            self._stats.iwant_served += 1

    def _count_served(self, peer: str, message_id: str) -> bool:
        key = (peer, message_id)
        count = self._served.pop(key, 0)
        if count >= MAX_RETRANSMISSIONS:
            self._served[key] = count
            return False
        self._served[key] = count + 1
        while len(self._served) > self._params.seen_max_entries:
            self._served.popitem(last=False)
        return True

    async def _offer(self, peer: str, ids: list[str]) -> None:
        if ids:
            self._stats.ihave_sent += 1
            await self._send(peer, {"type": MessageType.IHAVE.value, "ids": ids})

    async def _send(self, peer: str, message: dict[str, Any]) -> None:
        try:
            await self._transport.send(peer, message)
        except Exception as exc:  # link gone: the next round or reconnection repairs instead
            log.debug("repair %s to %s failed: %s", message["type"], peer, exc)

    def _expire(self) -> None:
        now = asyncio.get_running_loop().time()
        for message_id in [m for m, (_, expiry) in self._wanted.items() if expiry <= now]:
            del self._wanted[message_id]

    async def _loop(self) -> None:
        interval = self._params.repair_interval_s
        await asyncio.sleep(self._rng.uniform(0, interval))  # de-synchronise the nodes' rounds
        while True:
            try:
                await self.run_round()
            except Exception:
                log.exception("gossip repair round failed")
            await asyncio.sleep(interval)
