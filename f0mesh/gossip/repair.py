"""Pull-side repair (GossipSub's IHAVE/IWANT): what push lost, a digest exchange recovers.

Every heartbeat a node offers the ids it first saw in the last few heartbeats, per topic, to d_lazy
subscribers of the topic drawn uniformly, those outside its mesh first (GossipSub's gossip
emission); an IWANT is served only for topics the asker subscribes to. Every repair
interval it offers one random neighbour the ids of the messages created within repair_lookback,
from its store. Both are periodic digests, marked ``"fresh": true``; an envelope received in
answer to one passes the same rate limits as a pushed one and, if it is young, is pushed on like a
first receipt, so a gap in the push heals for every node behind it in one round instead of one
round per node.

When a link comes up both sides offer everything still within the replay window (catch-up
pages, unmarked), which is how a node that was offline catches up: the store, not the seen-cache,
says what it already has, so a restart loses nothing. Catch-up stays pairwise: answers to pages
are stored but not pushed on (the neighbours run their own repair), or a rejoining node would echo
the whole window to them. They bypass the rate limits because this node asked for them, up to
catchup_max_ids per link; past that budget a page is answered like a digest that is not pushed on.
A previous wire version sends every IHAVE unmarked, so it is served exactly as before.

Cost control (GossipSub v1.1): no IHAVE goes to or is taken from a neighbour below the gossip
threshold; what one neighbour may offer per heartbeat is capped (ihave_budget.py); of each IWANT
sent for a digest, one id is a promise: if it has not arrived (from anyone) when the want expires,
the advertiser broke it and its score pays.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from f0mesh.errors import StoreUnavailableError
from f0mesh.gossip.envelope import Envelope, is_message_id
from f0mesh.gossip.errors import GossipReject, Reason
from f0mesh.gossip.ihave_budget import IHaveBudget
from f0mesh.gossip.params import GossipParams
from f0mesh.gossip.push import Pusher
from f0mesh.gossip.stats import GossipStats
from f0mesh.gossip.store import GossipStore
from f0mesh.gossip.transport import MAX_IDS_PER_MESSAGE, GossipTransport, MessageType
from f0mesh.log_throttle import LogThrottle

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


@dataclass(frozen=True, slots=True)
class Want:
    """An id this node asked a neighbour for: whom, until when, and whether it answers a catch-up page."""

    peer: str
    expiry: float  # loop time
    page: bool
    promise: bool = False  # the id of its IWANT whose absence at expiry counts as a broken promise


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
        *,
        on_heartbeat: Callable[[], None] = lambda: None,
        audience: Callable[[str], tuple[list[str], list[str]]] | None = None,
        serves: Callable[[str, str], bool] = lambda peer, topic: True,
        on_gap: Callable[[str, str], None] = lambda peer, topic: None,
        may_gossip: Callable[[str], bool] = lambda peer: True,
        on_broken_promise: Callable[[str], None] = lambda peer: None,
    ) -> None:
        """``audience(topic)``: the neighbours subscribed to a topic that new messages do not reach
        by push (the heartbeat's IHAVE goes to them first), and those they do; ``serves(peer,
        topic)``: whether an IWANT of that neighbour for that topic is answered; ``on_gap(peer,
        topic)``: a neighbour asked for a young message, so push missed it; ``may_gossip(peer)``: the
        peer's score is at the gossip threshold or above; ``on_broken_promise(peer)``: an advertised
        id it was asked for never came."""
        self._transport = transport
        self._store = store
        self._pusher = pusher
        self._params = params
        self._stats = stats
        self._rng = rng
        self._log = LogThrottle(log, interval_s=60.0)
        self._clock = clock
        self._knows = knows
        self._on_heartbeat = on_heartbeat
        self._audience = audience or (lambda topic: (self._transport.neighbours(), []))
        self._serves = serves
        self._on_gap = on_gap
        self._may_gossip = may_gossip
        self._on_broken_promise = on_broken_promise
        self._budget = IHaveBudget(params)
        self._wanted: dict[str, Want] = {}
        self._catchup_left: dict[str, int] = {}  # neighbour -> ids still to ask at catch-up terms
        # (loop time first seen, id, topic), oldest first; no more than one digest's worth is offered
        self._recent: deque[tuple[float, str, str]] = deque(maxlen=params.repair_digest_size)
        # recent id -> neighbours known to hold it (it came from them, or they acked it): a digest
        # never offers a neighbour what it holds, so a quiet link carries no IHAVE it cannot use
        self._holders: dict[str, set[str]] = {}
        # recent id -> neighbours a heartbeat already offered it to: offered once, not once per
        # heartbeat of its gossip_history (an offer rides a reliable link; the periodic repair round
        # still offers it again), so a lazy neighbour hears an IHAVE only when there is news for it
        self._offered: dict[str, set[str]] = {}
        self._served: OrderedDict[tuple[str, str], int] = OrderedDict()  # (neighbour, id) -> copies sent
        self._offered_back: dict[str, float] = {}  # neighbour -> loop time of the last catch-up offered
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        if not self._tasks:
            self._tasks = [
                asyncio.create_task(self._loop(), name="gossip-repair"),
                asyncio.create_task(self._heartbeat_loop(), name="gossip-heartbeat"),
            ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []

    def note(
        self, message_id: str, holder: str | None = None, topic: str = "", now: float | None = None
    ) -> None:
        """A message this node pushes on (``holder``: the neighbour it came from): offered in the next
        heartbeats' digests to subscribers of its topic. ``now`` is the loop time, if the caller read it
        for a batch."""
        recent = self._recent
        if len(recent) == recent.maxlen:  # the oldest leaves the deque: its bookkeeping with it
            oldest = recent[0][1]
            self._holders.pop(oldest, None)
            self._offered.pop(oldest, None)
        recent.append((asyncio.get_running_loop().time() if now is None else now, message_id, topic))
        self._holders[message_id] = {holder} if holder else set()

    def held_by(self, peer: str, message_id: str) -> None:
        """``peer`` holds a recent message (it acknowledged our copy): no digest offers it again."""
        holders = self._holders.get(message_id)
        if holders is not None:
            holders.add(peer)

    def holders(self, message_id: str) -> set[str]:
        """The neighbours known to hold a recent message (empty once it is no longer recent)."""
        return self._holders.get(message_id, set())

    async def heartbeat(self) -> None:
        """Mesh upkeep, then each topic's recent ids to d_lazy of its subscribers drawn uniformly."""
        self._stats.heartbeats += 1
        self._budget.reset()
        self._expire()
        try:
            self._on_heartbeat()
        except Exception:
            log.exception("gossip heartbeat upkeep failed")
        horizon = asyncio.get_running_loop().time() - self._params.heartbeat_s * self._params.gossip_history
        while self._recent and self._recent[0][0] < horizon:
            self._forget(self._recent.popleft()[1])
        if not self._recent:
            return
        by_topic: dict[str, dict[str, None]] = {}
        for _, message_id, topic in self._recent:
            by_topic.setdefault(topic, {})[message_id] = None
        offers: dict[str, list[str]] = {}
        d_lazy = self._params.d_lazy
        for topic, ids in by_topic.items():
            lazy, pushed = self._audience(topic)
            lazy = [p for p in lazy if self._may_gossip(p)]
            pushed = [p for p in pushed if self._may_gossip(p)]
            targets = self._rng.sample(lazy, min(d_lazy, len(lazy)))
            if len(targets) < d_lazy:
                targets += self._rng.sample(pushed, min(d_lazy - len(targets), len(pushed)))
            for peer in targets:
                offers.setdefault(peer, []).extend(i for i in ids if self._news(peer, i))
        for peer, offered in offers.items():
            for message_id in offered:
                self._offered.setdefault(message_id, set()).add(peer)
            await self._offer(peer, offered, fresh=True)

    def _news(self, peer: str, message_id: str) -> bool:
        """Not held, not offered yet, and not waiting in its outbox: the IHAVE would overtake the push
        (the link is ordered, the outbox is not on it yet) and the IWANT it drew bring a second copy."""
        return (
            peer not in self._holders.get(message_id, ())
            and peer not in self._offered.get(message_id, ())
            and not self._pusher.queued(message_id, peer)
        )

    def _forget(self, message_id: str) -> None:
        self._holders.pop(message_id, None)
        self._offered.pop(message_id, None)

    async def run_round(self) -> None:
        """Offer one random neighbour the ids of the messages created within repair_lookback."""
        self._stats.repair_rounds += 1
        self._expire()
        neighbours = [p for p in self._transport.neighbours() if self._may_gossip(p)]
        if not neighbours:
            return
        peer = self._rng.choice(neighbours)
        since = self._clock() - self._params.repair_lookback_s
        ids = await self._store.ids_since(since, self._params.repair_digest_size)
        await self._offer(peer, [i for i in ids if not self._pusher.queued(i, peer)], fresh=True)

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
        self._catchup_left.pop(peer, None)
        self._budget.forget(peer)
        for message_id in [m for m, want in self._wanted.items() if want.peer == peer]:
            del self._wanted[message_id]

    def claim(self, peer: str, message_id: str) -> Want | None:
        """The IWANT this envelope answers, if this node sent one for it to that neighbour (cleared)."""
        wanted = self._wanted.get(message_id)
        if wanted is None or wanted.peer != peer:
            return None
        del self._wanted[message_id]
        return wanted

    async def on_ihave(self, peer: str, raw_ids: Any, *, catchup: bool = False, fresh: bool = False) -> None:
        """Ask for the offered ids this node lacks; ``catchup`` (see on_neighbour_up) offers back;
        ``fresh`` marks a periodic digest (its answers are pushed on), not a catch-up page."""
        ids = check_ids(raw_ids)
        self._stats.ihave_received += 1
        if not self._may_gossip(peer) or not self._budget.allow(peer, len(ids), page=not fresh):
            self._stats.ihave_ignored += 1
            return
        if catchup and self._may_offer_back(peer):
            await self.on_neighbour_up(peer)
        self._expire()
        unknown = [i for i in dict.fromkeys(ids) if not self._knows(i) and i not in self._wanted]
        if not unknown:
            return
        lacking = await self._store.missing(unknown)
        asked_already = sum(1 for want in self._wanted.values() if want.peer == peer)
        budget = self._params.max_pending_iwant - asked_already
        lacking = [i for i in lacking if i not in self._wanted][: max(0, budget)]
        if not lacking:
            return
        pages = 0  # how many of them are asked at catch-up terms
        if not fresh:
            left = self._catchup_left.setdefault(peer, self._params.catchup_max_ids)
            pages = min(left, len(lacking))
            self._catchup_left[peer] = left - pages
        expiry = asyncio.get_running_loop().time() + self._params.iwant_timeout_s
        page, digest = Want(peer, expiry, page=True), Want(peer, expiry, page=False)
        for number, message_id in enumerate(lacking):
            self._wanted[message_id] = page if number < pages else digest
        if pages < len(lacking):  # GossipSub tracks one id per IWANT as the advertiser's promise
            promised = self._rng.choice(lacking[pages:])
            self._wanted[promised] = Want(peer, expiry, page=False, promise=True)
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
            if not self._serves(peer, envelope.topic):
                continue
            wire = envelope.forwarded() if envelope.hops < envelope.ttl else raw
            self._pusher.send_untracked(peer, message_id, wire)
            self._stats.iwant_served += 1
            if self._clock() - envelope.created_at <= self._params.forward_repaired_age_s:
                self._on_gap(peer, envelope.topic)

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

    async def _offer(self, peer: str, ids: list[str], *, fresh: bool = False) -> None:
        if ids:
            self._stats.ihave_sent += 1
            message: dict[str, Any] = {"type": MessageType.IHAVE.value, "ids": ids}
            if fresh:
                message["fresh"] = True
            await self._send(peer, message)

    async def _send(self, peer: str, message: dict[str, Any]) -> None:
        try:
            await self._transport.send(peer, message)
        except Exception as exc:  # link gone: the next round or reconnection repairs instead
            log.debug("repair %s to %s failed: %s", message["type"], peer, exc)

    def _expire(self) -> None:
        now = asyncio.get_running_loop().time()
        for message_id in [m for m, want in self._wanted.items() if want.expiry <= now]:
            want = self._wanted.pop(message_id)
            if want.promise and not self._knows(message_id):
                self._stats.broken_promises += 1
                self._on_broken_promise(want.peer)

    async def _loop(self) -> None:
        interval = self._params.repair_interval_s
        await asyncio.sleep(self._rng.uniform(0, interval))  # de-synchronise the nodes' rounds
        while True:
            try:
                await self.run_round()
            except StoreUnavailableError as exc:  # the store down or full: in its words, once a minute
                self._log.warning("store", "gossip repair round skipped: %s", exc.detail)
            except Exception:
                log.exception("gossip repair round failed")
            await asyncio.sleep(interval)

    async def _heartbeat_loop(self) -> None:
        interval = self._params.heartbeat_s
        await asyncio.sleep(self._rng.uniform(0, interval))
        while True:
            try:
                await self.heartbeat()
            except Exception:
                log.exception("gossip heartbeat failed")
            await asyncio.sleep(interval)
