"""Push with acknowledgement: batched sends per neighbour, and retry elsewhere on silence.

A send counts only when the neighbour acknowledges it (after committing the message), so a link
that dies mid-send, a lost batch or a neighbour that swallows messages all look the same: no ack
in time, and the envelope goes to a neighbour not yet tried, a bounded number of times.

"In time" is per neighbour, as TCP's retransmission timeout is (RFC 6298): ack_timeout_s, or the
neighbour's smoothed ack delay plus four deviations if that is longer (at most MAX_ACK_TIMEOUT_FACTOR
times ack_timeout_s). A neighbour acks after its commit, so on a busy host every ack is late: a fixed
timeout then retried nearly every send, and each retry was one more duplicate for busy hosts to
commit, until the mesh spent itself on retries. Nor is a neighbour known to hold the message (it
sent us a copy) retried, or chosen to replace one that was.

Crossed copies need no ack either way: when a neighbour we pushed a message to sends us that
message too, its copy is its ack (settled at once, see crossed()), and ours stands for the ack it is
owed, so none is sent. On an idle mesh most duplicates are such crossings, and each ack was one more
SCTP packet and SACK. A node of the previous release still acks (ignored here, the send is settled)
and, receiving no ack from us, finds us among the holders when its timeout comes; the wire before
topics knows no holders, so the engine still acks crossed copies to it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import OrderedDict, deque
from collections.abc import Callable, Collection
from dataclasses import dataclass, field

from f0mesh.gossip.audit import AuditEvent
from f0mesh.gossip.params import GossipParams
from f0mesh.gossip.stats import GossipStats
from f0mesh.gossip.transport import GossipTransport, MessageType

# choose(excluded peers, k, topic) -> up to k neighbours not in excluded, in preference order
Chooser = Callable[[Collection[str], int, str], list[str]]
# on_acked(message id, neighbour, event) once per acknowledging neighbour
OnAcked = Callable[[str, str, AuditEvent], None]
# holders(message id) -> neighbours known to hold it already (they sent a copy, or acked one)
Holders = Callable[[str], Collection[str]]

MAX_ACK_TIMEOUT_FACTOR = 8.0  # an adapted ack timeout is at most this many ack_timeout_s
MAX_PUSHED = 4096  # messages whose push targets are remembered for crossed(), most recent kept


def _loop_time() -> float:
    return asyncio.get_running_loop().time()


class AckTimer:
    """One neighbour's smoothed ack delay and deviation (RFC 6298's SRTT and RTTVAR)."""

    __slots__ = ("rttvar", "srtt")

    def __init__(self, sample: float) -> None:
        self.srtt = sample
        self.rttvar = sample / 2

    def observe(self, sample: float) -> None:
        self.rttvar = 0.75 * self.rttvar + 0.25 * abs(self.srtt - sample)
        self.srtt = 0.875 * self.srtt + 0.125 * sample

    def timeout(self, floor: float) -> float:
        return min(max(floor, self.srtt + 4 * self.rttvar), floor * MAX_ACK_TIMEOUT_FACTOR)


class Outbox:
    """Envelopes queued for one neighbour, sent as few "msgs" transport messages as limits allow."""

    def __init__(
        self,
        peer: str,
        transport: GossipTransport,
        params: GossipParams,
        stats: GossipStats,
        on_sent: Callable[[str, list[str]], None],
        on_failed: Callable[[str, list[str]], None],
    ) -> None:
        self.peer = peer
        self._transport = transport
        self._params = params
        self._stats = stats
        self._on_sent = on_sent
        self._on_failed = on_failed
        self._queue: deque[tuple[str, bytes]] = deque()
        self.waiting: dict[str, int] = {}  # id -> copies queued or in the batch being handed to the link
        self._wake = asyncio.Event()
        self._task = asyncio.create_task(self._run(), name=f"gossip-outbox-{peer[-8:]}")

    def put(self, message_id: str, wire: bytes) -> None:
        self._queue.append((message_id, wire))
        self.waiting[message_id] = self.waiting.get(message_id, 0) + 1
        self._wake.set()

    async def close(self) -> None:
        """Stop sending and drop the queue (the Pusher fails what it tracked there)."""
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._queue.clear()
        self.waiting.clear()

    async def _run(self) -> None:
        params = self._params
        while True:
            await self._wake.wait()
            if params.batch_linger_s > 0:
                await asyncio.sleep(params.batch_linger_s)
            batch: list[tuple[str, bytes]] = []
            size = 0
            while self._queue and len(batch) < params.batch_max_envelopes:
                if batch and size + len(self._queue[0][1]) > params.batch_max_bytes:
                    break
                batch.append(self._queue.popleft())
                size += len(batch[-1][1])
            if not self._queue:
                self._wake.clear()
            ids = [message_id for message_id, _ in batch]
            message = {"type": MessageType.MSGS.value, "msgs": [wire for _, wire in batch]}
            try:
                await self._transport.send(self.peer, message)
            except Exception:  # the link is gone (or refused the message): every envelope in it failed
                self._stats.send_errors += 1
                self._on_failed(self.peer, ids)
                continue
            finally:
                waiting = self.waiting
                for message_id in ids:
                    left = waiting.pop(message_id, 1) - 1
                    if left:
                        waiting[message_id] = left
            self._stats.sent += len(batch)
            self._stats.sent_bytes += size
            self._on_sent(self.peer, ids)


@dataclass(slots=True)
class _Push:
    wire: bytes
    event: AuditEvent
    topic: str  # retries go only to subscribers of it
    excluded: set[str]  # never sent to (the sender, the origin) plus every neighbour tried
    outstanding: dict[str, float] = field(default_factory=dict)  # neighbour -> loop time sent
    retries_left: int = 0
    acked: int = 0


class Pusher:
    """Owns the outboxes and the sends awaiting acknowledgement."""

    def __init__(
        self,
        transport: GossipTransport,
        params: GossipParams,
        stats: GossipStats,
        choose: Chooser,
        on_acked: OnAcked,
        holders: Holders = lambda message_id: (),
        clock: Callable[[], float] | None = None,
    ) -> None:
        """``choose`` gives who replaces a failed send; ``holders`` who needs no copy any more;
        ``clock`` is the loop's time unless a test sets it."""
        self._transport = transport
        self._now: Callable[[], float] = clock or _loop_time  # the loop's own bound method from start()
        self._clock = clock
        self._params = params
        self._stats = stats
        self._choose = choose
        self._on_acked = on_acked
        self._holders = holders
        self._timers: dict[str, AckTimer] = {}  # neighbour -> its ack delay
        self._outboxes: dict[str, Outbox] = {}
        self._pending: dict[str, _Push] = {}
        self._pushed: OrderedDict[str, set[str]] = OrderedDict()  # message id -> neighbours pushed to
        # neighbour -> (loop time, message id) of each send's clock start, oldest first: the one
        # timeout of a neighbour makes its overdue sends a prefix, so a sweep reads only those. An
        # entry is stale once its send was acked or its clock restarted (a later entry stands for it)
        self._starts: dict[str, deque[tuple[float, str]]] = {}
        self._sweeper: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._clock is None:
            self._now = asyncio.get_running_loop().time
        if self._sweeper is None:
            self._sweeper = asyncio.create_task(self._sweep(), name="gossip-ack-sweeper")

    async def stop(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
            self._sweeper = None
        for outbox in list(self._outboxes.values()):
            await outbox.close()
        self._outboxes.clear()
        self._pending.clear()
        self._pushed.clear()
        self._starts.clear()

    @property
    def pending(self) -> int:
        """Messages with a send still awaiting its acknowledgement."""
        return len(self._pending)

    def push(
        self,
        message_id: str,
        wire: bytes,
        event: AuditEvent,
        excluded: Collection[str],
        to: Collection[str],
        topic: str,
    ) -> list[str]:
        """Send to every one of ``to`` not excluded; returns the neighbours chosen."""
        if message_id in self._pending:
            return []
        targets = [p for p in to if p not in excluded]
        if not targets:
            return []
        push = _Push(wire, event, topic, set(excluded), retries_left=self._params.max_retries)
        self._pending[message_id] = push
        for peer in targets:
            self._send(message_id, push, peer)
        return targets

    def send_untracked(self, peer: str, message_id: str, wire: bytes) -> None:
        """Queue an envelope with no retry (repair replies: the requester asks again if it must)."""
        self._outbox(peer).put(message_id, wire)

    def ack_timeout(self, peer: str) -> float:
        """How long a send to this neighbour waits for its ack."""
        timer = self._timers.get(peer)
        floor = self._params.ack_timeout_s
        return floor if timer is None else timer.timeout(floor)

    def _started(self, peer: str, message_id: str, now: float) -> None:
        """A send's ack clock starts (queued) or restarts (handed to the link) at ``now``."""
        starts = self._starts.get(peer)
        if starts is None:
            starts = self._starts[peer] = deque()
        starts.append((now, message_id))

    def on_ack(self, peer: str, ids: list[str]) -> None:
        now = self._now()
        for message_id in ids:
            push = self._pending.get(message_id)
            sent = None if push is None else push.outstanding.pop(peer, None)
            if push is None or sent is None:
                continue  # untracked (repair), a retry already replaced it, or a stray ack
            timer = self._timers.get(peer)
            if timer is None:
                self._timers[peer] = AckTimer(now - sent)
            else:
                timer.observe(now - sent)
            push.acked += 1
            self._on_acked(message_id, peer, push.event)
            if not push.outstanding:
                del self._pending[message_id]

    def queued(self, message_id: str, peer: str) -> bool:
        """Whether the message waits in ``peer``'s outbox, not yet handed to the link: anything sent
        to it meanwhile (an IHAVE) overtakes it."""
        outbox = self._outboxes.get(peer)
        return outbox is not None and message_id in outbox.waiting

    def crossed(self, peer: str, message_id: str) -> bool:
        """A copy of a message came from ``peer``: whether we pushed it that message too, in which
        case our copy is the ack it is owed. Its copy settles our send to it like an ack, without a
        delay sample (a crossing says nothing of its ack delay)."""
        push = self._pending.get(message_id)
        if push is not None and push.outstanding.pop(peer, None) is not None:
            push.acked += 1
            self._on_acked(message_id, peer, push.event)
            if not push.outstanding:
                del self._pending[message_id]
        return peer in self._pushed.get(message_id, ())

    async def neighbour_down(self, peer: str) -> None:
        self._timers.pop(peer, None)
        self._starts.pop(peer, None)
        outbox = self._outboxes.pop(peer, None)
        if outbox is not None:
            await outbox.close()
        for message_id in [m for m, push in self._pending.items() if peer in push.outstanding]:
            self._failed(message_id, peer)

    def _outbox(self, peer: str) -> Outbox:
        outbox = self._outboxes.get(peer)
        if outbox is None:
            outbox = self._outboxes[peer] = Outbox(
                peer, self._transport, self._params, self._stats, self._sent, self._send_failed
            )
        return outbox

    def _send(self, message_id: str, push: _Push, peer: str) -> None:
        push.excluded.add(peer)
        pushed = self._pushed.get(message_id)
        if pushed is None:
            pushed = self._pushed[message_id] = set()
            if len(self._pushed) > MAX_PUSHED:
                self._pushed.popitem(last=False)
        pushed.add(peer)
        now = self._now()
        push.outstanding[peer] = now
        self._started(peer, message_id, now)
        self._outbox(peer).put(message_id, push.wire)

    def _sent(self, peer: str, ids: list[str]) -> None:
        """The batch left: the ack clock restarts now, so time spent queued is not held against it."""
        now = self._now()
        for message_id in ids:
            push = self._pending.get(message_id)
            if push is not None and peer in push.outstanding:
                push.outstanding[peer] = now
                self._started(peer, message_id, now)

    def _send_failed(self, peer: str, ids: list[str]) -> None:
        for message_id in ids:
            self._failed(message_id, peer)

    def _failed(self, message_id: str, peer: str) -> None:
        push = self._pending.get(message_id)
        if push is None or push.outstanding.pop(peer, None) is None:
            return
        holders = self._holders(message_id)
        if peer in holders:
            push.acked += 1  # late to ack, but it has the message: nothing to replace
        elif push.retries_left > 0:
            replacement = self._choose(push.excluded.union(holders), 1, push.topic)
            if replacement:
                push.retries_left -= 1
                self._stats.retries += 1
                self._send(message_id, push, replacement[0])
        if not push.outstanding:
            del self._pending[message_id]
            if not push.acked:
                self._stats.undelivered += 1

    def expired(self, now: float) -> list[tuple[str, str]]:
        """(message id, neighbour) of the sends whose ack is overdue at loop time ``now``, oldest
        first per neighbour. Reads each neighbour's starts up to its first send still in time; what it
        passes is dropped, stale or overdue."""
        out: list[tuple[str, str]] = []
        seen: set[tuple[str, str]] = set()  # a send restarted within one clock tick has two entries
        pending = self._pending
        for peer, starts in list(self._starts.items()):
            timeout = self.ack_timeout(peer)
            while starts:
                start, message_id = starts[0]
                push = pending.get(message_id)
                current = push is not None and push.outstanding.get(peer) == start
                if current and now - start < timeout:
                    break
                starts.popleft()
                if current and (message_id, peer) not in seen:
                    seen.add((message_id, peer))
                    out.append((message_id, peer))
            if not starts:
                del self._starts[peer]
        return out

    async def _sweep(self) -> None:
        interval = max(0.01, self._params.ack_timeout_s / 4)
        while True:
            await asyncio.sleep(interval)
            expired = self.expired(self._now())
            self._stats.ack_timeouts += len(expired)
            for message_id, peer in expired:
                self._failed(message_id, peer)
