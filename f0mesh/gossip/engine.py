"""GossipEngine: validates, stores, delivers and spreads signed messages for one node.

Inbound, every envelope runs the same pipeline, cheapest and most certain checks first: size,
decode, topic subscribed, seen-cache, signature, blocked origin, time validity (replay window, HLC
skew), rate limits (per neighbour, then per origin), then store + deliver + forward. Each decision
is one audit row, committed with the message it concerns; a neighbour is acknowledged only after
that commit, and a send of ours counts only once acknowledged (see push.py).

The seen-cache holds only ids of envelopes whose signature verified, and an id is the hash of the
signed bytes, so a copy whose id is there carries exactly the bytes already verified: it is a
duplicate whatever its signature field says, and needs no Ed25519 verify. A forged copy sent first
fails the verify and enters nothing, so it cannot censor the real one.

A new message is pushed at once to the mesh peers of its topic (topic_mesh.py), the topic's other
subscribers hear of it from the heartbeat's IHAVE (repair.py); own messages go to every subscriber.
A message of a topic this node does not subscribe to (topics.py) is dropped unstored, unacknowledged
and unrelayed, with an audit row; own ones are always stored. All tunables come from GossipParams.

Every neighbour has a peer score (score.py) with GossipSub v1.1's consequences: below
graylist_threshold everything it sends is ignored (counted, one audit row per heartbeat) and the next
heartbeat hands it to ``on_offender`` to be disconnected; flood publishing skips peers below
publish_threshold, IHAVE those below gossip_threshold (repair.py). A topic may have an application
validator (validators.py) between the limits and the commit; large first receipts are announced by
IDONTWANT (idontwant.py).

Own publishes are admitted only while fewer than ``max_pending_publishes`` wait for their commit:
past that the store is the bottleneck, and a refusal the caller can see (and retry) is better than
an ever longer queue that answers everyone late.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import math
import random
import time
from collections import Counter, OrderedDict
from collections.abc import Awaitable, Callable, Collection, Coroutine, Sequence
from functools import partial
from itertools import islice
from typing import Any, NamedTuple, Protocol

from f0mesh.crdt import HLC, ClockSkewError, HLCTimestamp
from f0mesh.gossip.audit import AuditEvent, AuditRow, GossipTracer
from f0mesh.gossip.envelope import Envelope
from f0mesh.gossip.errors import GossipReject, Reason
from f0mesh.gossip.idontwant import DontWant
from f0mesh.gossip.params import GossipParams
from f0mesh.gossip.push import Pusher
from f0mesh.gossip.repair import Repair, check_ids
from f0mesh.gossip.score import PeerScoreParams, PeerScores
from f0mesh.gossip.seen_cache import SeenCache
from f0mesh.gossip.stats import GossipStats
from f0mesh.gossip.store import GossipStore, StoredMessage
from f0mesh.gossip.topic_mesh import TopicMesh
from f0mesh.gossip.topics import Subscriptions, check_topics
from f0mesh.gossip.transport import (
    MAX_ENVELOPES_PER_MESSAGE,
    MAX_IDS_PER_MESSAGE,
    CountingTransport,
    GossipTransport,
    MessageType,
)
from f0mesh.gossip.validators import Validator, Validators, Verdict
from f0mesh.gossip.writer import WriteBehind
from f0mesh.identity import Identity
from f0mesh.tasks import TaskSet
from f0mesh.trust import Event, RateLimiter, TrustParams
from f0mesh.trust.rate_limit import EVICTION_SAMPLE

log = logging.getLogger(__name__)

Subscriber = Callable[[StoredMessage], Awaitable[None] | None]
Blocked = Callable[[str], bool]
MayPublish = Callable[[str, str], bool]  # (topic, origin) -> whether the topic's publish policy allows it
Verifier = Callable[[Envelope], None]  # raises GossipReject(bad_signature)
Offender = Callable[[str], Awaitable[None] | None]


class Feedback(Protocol):
    """Behaviour reported to the trust layer: ``count`` events of one kind (first deliveries come
    once per frame, counted)."""

    def __call__(self, peer: str, event: Event, count: float = 1.0) -> None: ...


_CONTROL_KEYS = ("subs", "graft", "prune")
STOP_GRACE_S = 1.0  # how long stop() lets final acks and subscriber callbacks finish
MAX_TRACKED_ORIGINS = 10_000
# Audit reason of an envelope whose origin this node's operator blocked. Not a Reason: the neighbour
# that relayed it cannot know this node's block list, so it is not held against anyone.
BLOCKED = "blocked"
# Audit reason of a valid envelope that this node's store did not take (a full disk): not acknowledged,
# so the sender tries elsewhere; not the neighbour's fault either.
NOT_STORED = "not_stored"
# Audit reason of an envelope of a topic this node does not subscribe to: not stored, not acknowledged,
# not relayed. Not held against the neighbour: it may not have heard of a change yet, or be of the
# previous wire version (which takes every neighbour as subscribed to everything).
NOT_SUBSCRIBED = "not_subscribed"
# _origin_verdict's answers
_MAY_PUBLISH = object()
_BLOCKED_ORIGIN = object()
_NOT_PUBLISHER = object()
# Audit reasons of what the score or a validator made this node drop without blaming anyone further
GRAYLISTED = "graylisted"
IGNORED = "ignored"
# The reason of a "received" row says which road the first copy took when it was not a push: an
# answer to a periodic digest's IWANT (push missed this node), or to a catch-up page (it was away)
VIA_IWANT = "iwant"
VIA_CATCHUP = "catchup"
# what costs a neighbour its gossip score (P4): it relayed what an honest relay would have refused
_INVALID = frozenset(
    {Reason.BAD_SIGNATURE, Reason.MALFORMED, Reason.TOO_LARGE, Reason.CLOCK_SKEW, Reason.INVALID}
)

# how each rejection reads to the trust layer's behaviour score
_FEEDBACK = {
    Reason.BAD_SIGNATURE: Event.INVALID_SIGNATURE,
    Reason.REPLAY: Event.REPLAY,
    Reason.CLOCK_SKEW: Event.REPLAY,  # outside the acceptance window, just on the other side
    Reason.RATE_LIMITED: Event.RATE_LIMITED,
    Reason.MALFORMED: Event.MALFORMED,
    Reason.TOO_LARGE: Event.MALFORMED,
    Reason.INVALID: Event.MALFORMED,
}


class _Own(NamedTuple):
    """Own messages of one publish call between their signature and their commit."""

    topic: str
    envelopes: list[tuple[Envelope, bytes]]
    stored: list[StoredMessage]
    committed: asyncio.Future[Any]  # the id, or publish_many's list of ids
    many: bool


class GossipEngine:
    def __init__(
        self,
        identity: Identity,
        transport: GossipTransport,
        store: GossipStore,
        *,
        params: GossipParams | None = None,
        hlc: HLC | None = None,
        scores_provider: Callable[[], dict[str, float]] | None = None,
        origin_limiter: RateLimiter | None = None,
        neighbour_limiter: RateLimiter | None = None,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.time,
        tracer: GossipTracer | None = None,
        feedback: Feedback | None = None,
        blocked: Blocked | None = None,
        may_publish: MayPublish | None = None,
        verifier: Verifier = Envelope.verify,
        topics: Collection[str] = (),
        always_subscribed: Collection[str] = (),
        score_params: PeerScoreParams | None = None,
        on_offender: Offender | None = None,
    ) -> None:
        """``clock`` is epoch seconds (replay window, audit times); ``feedback(neighbour, event)``
        reports behaviour to the trust layer (PeerScore.record fits); the limiters' scores are the
        trust layer's to keep current (RateLimiter.set_scores); ``blocked(peer_id)`` says whether
        the operator blocked an origin, whose messages are then refused whoever relays them;
        ``may_publish(topic, origin)`` is the topic's publish policy: other origins' messages are
        refused (``not_publisher``, not held against the relay, which may not know the policy yet),
        a local publish raises 403; system topics are never asked about;
        ``verifier`` checks an envelope's signature (a seam for counting or faster crypto);
        ``topics`` are subscribed at start (none: every topic, ``*``), ``always_subscribed`` can never
        be left (system topics); ``on_offender(peer)`` disconnects a neighbour whose score fell below
        graylist_threshold."""
        self.identity = identity
        self.peer_id = identity.peer_id
        self.params = params or GossipParams()
        self._hlc_on_clock = hlc is None  # then a frame's clock reading is the hlc's too
        self.hlc = hlc or HLC(
            self.peer_id,
            max_skew_ms=int(self.params.max_clock_skew_s * 1000),
            clock=lambda: int(clock() * 1000),
        )
        self.stats = GossipStats()
        transport = CountingTransport(transport, self.stats.sent_by_type)
        self._transport = transport
        self._store = store
        self._scores = scores_provider or dict
        trust = TrustParams()
        # `is None`, not `or`: an empty RateLimiter is falsy (it has a length)
        self._origin_limiter = RateLimiter(trust.origin_rate) if origin_limiter is None else origin_limiter
        self._neighbour_limiter = (
            RateLimiter(trust.neighbour_rate) if neighbour_limiter is None else neighbour_limiter
        )
        self._rng = rng or random.Random()
        self._clock = clock
        self._tracer = tracer
        self._feedback = feedback
        self._blocked = blocked
        self._may_publish = may_publish
        self._verify = verifier
        self._on_offender = on_offender
        self.score = PeerScores(score_params, self._scores)
        self.validators = Validators(self.params.validator_timeout_s, self.params.validator_concurrency)
        self._dont_want = DontWant(self.params.max_idontwant_ids)
        self._graylist_audited: dict[str, float] = {}  # neighbour -> loop time of its last graylisted row
        self._ejected: set[str] = set()  # offenders handed to on_offender whose link is not down yet
        self._pending_publishes = 0
        self._seen = SeenCache(self.params.seen_max_entries, self.params.seen_ttl_s, clock)
        self._writer = WriteBehind(store, self.params, self.stats, after_batch=self._push_own)
        self._own_committed_batch: list[_Own] = []  # own publishes committed in the writer's batch
        self.subscriptions = Subscriptions(topics, always_subscribed)
        self.mesh = TopicMesh(
            self.params,
            transport.neighbours,
            self._scores,
            self._rng,
            self.subscriptions,
            on_control=self._control_soon,
            score=self.score.score,
        )
        self._pusher = Pusher(
            transport, self.params, self.stats, self._choose, self._acked, holders=self._holders
        )
        self.repair = Repair(
            transport,
            store,
            self._pusher,
            self.params,
            self.stats,
            self._rng,
            clock,
            self._seen.__contains__,
            on_heartbeat=self._heartbeat,
            audience=self.mesh.audience,
            serves=self.subscriptions.wants,
            on_gap=self.mesh.missed,
            may_gossip=lambda peer: not self.score.below(peer, self.params.gossip_threshold),
            on_broken_promise=self.score.broken_promise,
        )
        self._subscribers: list[tuple[str | None, Subscriber]] = []
        self._highest_seq: OrderedDict[str, int] = OrderedDict()
        self._acks: dict[str, list[str]] = {}
        # first copies admitted from the frame being processed, and their audit rows: one writer item
        # (one commit callback) per frame, submitted before any other row so the writer's order holds
        self._received: list[tuple[str, StoredMessage]] = []
        self._received_rows: list[AuditRow] = []
        self._acked_rows: list[AuditRow] = []  # sent/forwarded rows of the ack frame being processed
        # the frame being processed: its one wall-clock reading (ms) and newest HLC stamp that passed
        self._frame_wall_ms = 0
        self._frame_newest: HLCTimestamp | None = None
        # (topic, origin) -> _origin_verdict, for the frame being processed (at most its envelopes)
        self._frame_origins: dict[tuple[str, str], object] = {}
        self._tasks = TaskSet("gossip", log)
        self._seq = 0
        self._started = False

    # lifecycle

    async def start(self) -> None:
        """Resume from the store: own sequence, and the ids already held within the window."""
        if self._started:
            return
        self._seq = await self._store.max_seq(self.peer_id)
        since = self._clock() - self.params.replay_window_s - self.params.max_clock_skew_s
        for message_id in reversed(await self._store.ids_since(since, self.params.seen_max_entries)):
            self._seen.add(message_id)
        self._writer.start()
        self._pusher.start()
        self.repair.start()
        self._started = True
        for peer in self._transport.neighbours():  # links that came up before the engine did
            self._spawn(self._announce(peer))
            self._spawn(self.repair.on_neighbour_up(peer, ask_back=True))

    async def stop(self) -> None:
        """Stop sending and repairing; everything accepted so far is committed first."""
        if not self._started:
            return
        self._started = False
        await self.repair.stop()
        await self._pusher.stop()
        await self._writer.stop()
        self._flush_acks()  # what the last commits earned, so senders need not retry elsewhere
        await self._tasks.close(STOP_GRACE_S)

    async def flush(self) -> None:
        """Wait until every row accepted so far is committed."""
        await self._writer.flush()

    # local API

    def subscribe(self, topic: str | None, callback: Subscriber) -> Callable[[], None]:
        """Call back with each committed message of a topic (None: every topic), own ones included.

        Returns the function that unsubscribes.
        """
        entry = (topic, callback)
        self._subscribers.append(entry)
        return lambda: self._subscribers.remove(entry) if entry in self._subscribers else None

    def validator(self, topic: str, fn: Validator) -> Callable[[], None]:
        """Have ``fn`` judge every message of ``topic`` from neighbours (validators.py); returns the
        function that removes it."""
        return self.validators.add(topic, fn)

    def publish(self, topic: str, payload: Any) -> asyncio.Future[str]:
        """Sign and spread a message; the future gives its id once it is committed and its push has
        started (a future, not a coroutine: one frame fewer to resume, per publish).

        Raises GossipReject: malformed / too_large for a bad topic or payload, rate_limited (429)
        while ``max_pending_publishes`` publishes already wait for the store; the future carries the
        store's error if the commit failed.
        """
        return self._publishing(topic, (payload,), many=False)

    def publish_many(self, topic: str, payloads: Sequence[Any]) -> asyncio.Future[list[str]]:
        """publish() for several payloads of one topic: each its own envelope, sequence number and
        signature, as if published one by one, but one commit to wait for and one writer item. All or
        nothing: a bad payload refuses them all before any is stored; they count as that many
        publishes against ``max_pending_publishes`` (more than it holds: rate_limited, never admitted).
        """
        if not payloads:
            done: asyncio.Future[list[str]] = asyncio.get_running_loop().create_future()
            done.set_result([])
            return done
        return self._publishing(topic, payloads, many=True)

    def _publishing(self, topic: str, payloads: Sequence[Any], *, many: bool) -> asyncio.Future[Any]:
        """Admit, sign and submit own messages; the future gives their ids (``many``: a list of them,
        else the one id) once they are committed and their push has started. Their push
        starts after the writer's commit (_push_own), not in the awaiting caller: one look at the
        topic's targets for all the publishes of a batch, and a committed message is pushed even if
        its caller was cancelled meanwhile."""
        if not self._started:
            raise RuntimeError("GossipEngine.publish before start()")
        limit, count = self.params.max_pending_publishes, len(payloads)
        if self._pending_publishes + count > limit:
            self.stats.publish_overloaded += 1
            raise GossipReject(
                Reason.RATE_LIMITED,
                f"the node is busy: {self._pending_publishes} publishes are waiting for the store "
                f"(max_pending_publishes {limit}, {count} more asked); retry later",
            )
        if not self._publisher(topic, self.peer_id):
            raise GossipReject(Reason.NOT_PUBLISHER, f"this node is not a publisher of {topic[:128]!r}")
        ttl, max_bytes, seq = self.params.ttl, self.params.max_message_bytes, self._seq
        envelopes: list[tuple[Envelope, bytes]] = []
        for payload in payloads:
            seq += 1
            envelope = Envelope.create(self.identity, seq, self.hlc.now(), topic, payload, ttl)
            wire = envelope.encode()
            if len(wire) > max_bytes:
                raise GossipReject(Reason.TOO_LARGE, f"message is {len(wire)} bytes, limit {max_bytes}")
            envelopes.append((envelope, wire))
        self._seq = seq
        now = self._clock()
        stored, rows = [], []
        published, peer_id = AuditEvent.PUBLISHED, self.peer_id
        for envelope, wire in envelopes:
            self._seen.add(envelope.id, now=now)
            stored.append(self._stored(envelope, wire, now))
            rows.append(self._audit(published, envelope.id, peer_id, None, now))
        committed: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        own = _Own(topic, envelopes, stored, committed, many)
        self._pending_publishes += count
        self._submit(stored, rows, partial(self._own_committed, own))
        return committed

    def _own_committed(self, own: _Own, error: Exception | None) -> None:
        """Writer callback of one publish: queued for the push after the batch's last callback (or
        forgotten, with the store's error for the caller)."""
        self._pending_publishes -= len(own.envelopes)  # here: a cancelled caller's still waited
        if error is not None:
            for envelope, _wire in own.envelopes:
                self._seen.discard(envelope.id)
            if not own.committed.done():
                own.committed.set_exception(error)
            return
        self._own_committed_batch.append(own)

    def _push_own(self) -> None:
        """After a writer batch: deliver and push every own message it committed, then tell the
        callers. The flood targets are read once per topic and batch, not once per publish."""
        settled, self._own_committed_batch = self._own_committed_batch, []
        if not settled:
            return
        targets: dict[str, list[str]] = {}
        published: Counter[str] = Counter()
        floor = self.params.publish_threshold
        now = asyncio.get_running_loop().time()
        sent, exclude, push = AuditEvent.SENT, {self.peer_id}, self._pusher.push
        for own in settled:
            topic = own.topic
            published[topic] += len(own.envelopes)
            try:
                if self._started:  # after stop(): stored, and offered by repair once the node is back
                    to = targets.get(topic)
                    if to is None:
                        to = targets[topic] = [
                            p for p in self.mesh.publish_targets(topic) if not self.score.below(p, floor)
                        ]
                    for (envelope, wire), message in zip(own.envelopes, own.stored, strict=True):
                        self._deliver(message)
                        self.repair.note(envelope.id, None, topic, now)
                        push(envelope.id, wire, sent, exclude, to, topic)
                else:
                    for message in own.stored:
                        self._deliver(message)
            except Exception:  # stored all the same: repair offers it; its caller must not wait forever
                log.exception("gossip push of own messages on %s failed", topic[:128])
            if not own.committed.done():  # a cancelled caller's are pushed all the same
                ids = [envelope.id for envelope, _wire in own.envelopes]
                own.committed.set_result(ids if own.many else ids[0])
        for topic, count in published.items():
            self.stats.count("published", topic, count)

    async def join(self, topic: str) -> bool:
        """Subscribe to a topic and tell the neighbours; whether anything changed (ValueError for a
        bad name, topics.TooManyTopics past the cap)."""
        if not self.subscriptions.join(topic):
            return False
        await self._announce_all()
        return True

    async def leave(self, topic: str) -> bool:
        """Unsubscribe (PRUNE the topic's mesh, tell the neighbours); ValueError for a system topic."""
        if not self.subscriptions.leave(topic):
            return False
        self.mesh.leave(topic)
        await self._announce_all()
        return True

    def highest_seq(self, origin: str) -> int:
        """Highest sequence number accepted from an origin since start (0 if none)."""
        return self._seq if origin == self.peer_id else self._highest_seq.get(origin, 0)

    @property
    def pending_pushes(self) -> int:
        return self._pusher.pending

    # transport callbacks

    async def on_message(self, from_peer: str, message: dict[str, Any]) -> None:
        """Entry point for every transport message from a neighbour (formats: transport.MessageType)."""
        kind = message.get("type") if isinstance(message, dict) else None
        if self._graylisted(from_peer):
            return
        try:
            if kind == MessageType.MSGS:
                self._on_msgs(from_peer, message.get("msgs"))
            elif kind == MessageType.ACK:
                self._pusher.on_ack(from_peer, check_ids(message.get("ids")))
                self._flush_pending()  # the rows of the sends this frame settled
                if "dontwant" in message:
                    self._dont_want.add(from_peer, check_ids(message["dontwant"]))
            elif kind == MessageType.IHAVE:
                ids = message.get("ids")
                if any(key in message for key in _CONTROL_KEYS):
                    self._on_control(from_peer, message)
                    if ids == [] and message.get("catchup") is not True:
                        return  # control only
                await self.repair.on_ihave(
                    from_peer,
                    ids,
                    catchup=message.get("catchup") is True,
                    fresh=message.get("fresh") is True,
                )
            elif kind == MessageType.IWANT:
                await self.repair.on_iwant(from_peer, message.get("ids"))
            else:
                raise GossipReject(Reason.MALFORMED, f"unknown message type {str(kind)[:40]!r}")
        except GossipReject as reject:
            self._reject(from_peer, None, reject.reason)

    async def on_neighbour_up(self, peer_id: str) -> None:
        self.mesh.changed()  # a new candidate for the meshes short of d_lo
        if self._started:
            await self._announce(peer_id)
            await self.repair.on_neighbour_up(peer_id)

    async def on_neighbour_down(self, peer_id: str) -> None:
        self._acks.pop(peer_id, None)
        self.subscriptions.forget(peer_id)
        self._dont_want.forget(peer_id)
        self._graylist_audited.pop(peer_id, None)
        self._ejected.discard(peer_id)
        self.mesh.remove(peer_id)
        self.repair.on_neighbour_down(peer_id)
        await self._pusher.neighbour_down(peer_id)

    # inbound pipeline

    def _on_msgs(self, peer: str, raws: Any) -> None:
        """One frame's envelopes: each is checked on its own, with one clock reading for the frame
        (it is processed in one go), and its first copies reach the writer as one item."""
        if not isinstance(raws, list) or len(raws) > MAX_ENVELOPES_PER_MESSAGE:
            limit = MAX_ENVELOPES_PER_MESSAGE
            raise GossipReject(Reason.MALFORMED, f"msgs must be a list of at most {limit} envelopes")
        self.stats.recv_unfiltered += len(raws)
        now = self._clock()
        self._frame_wall_ms = int(now * 1000) if self._hlc_on_clock else self.hlc.wall_ms()
        self._frame_newest = None
        self._frame_origins = {}
        try:
            for raw in raws:
                self._accept(peer, raw, now)
        finally:
            self._submit_received()
            if self._frame_newest is not None:  # checked against this same reading: cannot raise
                self.hlc.update(self._frame_newest, self._frame_wall_ms)

    def _accept(self, peer: str, raw: Any, now: float) -> None:
        envelope: Envelope | None = None
        try:
            envelope = Envelope.decode(raw, self.params.max_message_bytes)
        except GossipReject as reject:
            if isinstance(raw, bytes):
                self.stats.recv_bytes += len(raw)
            self._reject(peer, None, reject.reason, penalise=reject.penalise)
            return
        self.stats.recv_bytes += len(raw)
        if not self.subscriptions.subscribed(envelope.topic):
            self.stats.rejected[NOT_SUBSCRIBED] += 1
            row = self._audit(AuditEvent.REJECTED, envelope.id, peer, NOT_SUBSCRIBED, now)
            self._submit(audit=[row], droppable=True)
            return
        if self._seen.has(envelope.id, now):
            if now - envelope.created_at > self.params.replay_window_s:
                self._reject(peer, envelope.id, Reason.REPLAY)  # held already, but replayed late
                return
            self.stats.count("duplicates", envelope.topic)
            row = self._audit(AuditEvent.DUPLICATE, envelope.id, peer, None, now)
            # droppable: one valid envelope replayed endlessly must not flood the store; a crossed
            # copy (we pushed it this message too) is acked by ours (push.py), except to the wire
            # before topics, which knows no holders and would retry
            crossed = self._pusher.crossed(peer, envelope.id) and self.subscriptions.speaks_topics(peer)
            on_commit = None if crossed else partial(self._duplicate_committed, peer, envelope.id)
            self._submit(audit=[row], on_commit=on_commit, droppable=True)
            self.repair.held_by(peer, envelope.id)  # no retry or digest need bring it this one
            if self.score.p3:
                self.score.duplicate(envelope.id, peer, self.mesh.meshes.get(envelope.topic, ()))
            if self.repair.claim(peer, envelope.id) is None:
                self.mesh.pushed_by(peer, envelope.topic)
            return
        try:
            self._verify(envelope)
            key = (envelope.topic, envelope.origin)
            verdict = self._frame_origins.get(key)
            if verdict is None:
                verdict = self._frame_origins[key] = self._origin_verdict(*key)
            if verdict is _BLOCKED_ORIGIN:
                self.repair.claim(peer, envelope.id)  # not the relay's broken promise: our block list
                self._refuse_blocked(peer, envelope.id)
                return
            if verdict is _NOT_PUBLISHER:
                self.repair.claim(peer, envelope.id)
                raise GossipReject(Reason.NOT_PUBLISHER, penalise=False)
            self._check_time(envelope, now)
        except GossipReject as reject:
            self._reject(peer, envelope.id, reject.reason, penalise=reject.penalise)
            return
        solicited = self.repair.claim(peer, envelope.id)
        # answers to a catch-up page were asked for in bulk and go no further: no rate limit; the
        # rest, digest answers included, pass the same limits as a push, or an IWANT would let an
        # origin past its own
        catchup = solicited is not None and solicited.page
        # a catch-up answer skips only the neighbour's limit (bounded by catchup_max_ids a link): the
        # origin's limit holds on every road in, or advertising first would let an origin past it.
        # Refused, it is not the neighbour's fault (we asked) and stays unseen for a later round.
        if not (catchup or self._neighbour_limiter.allow(peer)) or not self._origin_limiter.allow(
            envelope.origin
        ):
            self._reject(peer, envelope.id, Reason.RATE_LIMITED, penalise=not catchup)
            return
        if envelope.topic in self.validators:
            self._seen.add(envelope.id)  # copies arriving meanwhile are duplicates, not validated again
            self._spawn(self._validate(peer, envelope, raw, solicited))
            return
        self._admit(peer, envelope, raw, solicited, now)

    async def _validate(self, peer: str, envelope: Envelope, raw: bytes, solicited: Any) -> None:
        verdict = await self.validators.check(self._stored(envelope, raw, self._clock()))
        if verdict is Verdict.ACCEPT:
            self._admit(peer, envelope, raw, solicited, self._clock())
            self._submit_received()
            return
        self._seen.discard(envelope.id)  # neither stored nor acknowledged
        if verdict is Verdict.REJECT:
            self._reject(peer, envelope.id, Reason.INVALID)
        else:
            self.stats.validation_ignored += 1
            self._submit(audit=[self._audit(AuditEvent.REJECTED, envelope.id, peer, IGNORED)], droppable=True)

    def _admit(self, peer: str, envelope: Envelope, raw: bytes, solicited: Any, now: float) -> None:
        """Store, deliver and forward an envelope that passed every check; the caller submits the
        frame's first copies (_submit_received)."""
        catchup = solicited is not None and solicited.page
        self._seen.add(envelope.id, now=now)
        self._note_seq(envelope.origin, envelope.seq)
        via = None if solicited is None else VIA_CATCHUP if catchup else VIA_IWANT
        self._received.append((peer, self._stored(envelope, raw, now)))
        self._received_rows.append(self._audit(AuditEvent.RECEIVED, envelope.id, peer, via, now))
        large = len(raw) >= self.params.idontwant_min_bytes
        if self.score.p3:
            mesh = self.mesh.meshes.get(envelope.topic, ())
            self.score.first_receipt(envelope.id, peer, mesh, expect=not (large or catchup))
        pushed: list[str] = []
        if solicited is None:
            self.mesh.pushed_by(peer, envelope.topic)
            pushed = self._forward(peer, envelope)
        elif not (catchup or now - envelope.created_at > self.params.forward_repaired_age_s):
            self.stats.repaired_forwarded += 1
            pushed = self._forward(peer, envelope)
        if large:  # our copy says it as well to those we push to, a moment later on the same link
            self._announce_dont_want(envelope.id, envelope.topic, {peer, *pushed})

    def _forward(self, peer: str, envelope: Envelope) -> list[str]:
        """Push a first receipt on to the topic's mesh; returns the neighbours it goes to."""
        self.repair.note(envelope.id, peer, envelope.topic)
        if envelope.hops >= envelope.ttl:
            return []
        excluded = {peer, envelope.origin, self.peer_id}
        mesh_targets = self.mesh.targets(envelope.topic, excluded)
        if not mesh_targets:  # nobody to push to (a leaf of the mesh): no wire form to build
            return []
        dont_want = self._dont_want.peers(envelope.id) - excluded
        to = [p for p in mesh_targets if p not in dont_want]
        self.stats.idontwant_skipped += len(mesh_targets) - len(to)
        if not to:
            return []
        wire, skip = envelope.forwarded(), excluded | dont_want
        return self._pusher.push(envelope.id, wire, AuditEvent.FORWARDED, skip, to, envelope.topic)

    def _check_time(self, envelope: Envelope, now: float) -> None:
        age = now - envelope.created_at
        if age > self.params.replay_window_s:
            raise GossipReject(
                Reason.REPLAY, f"created {age:.0f} s ago, window {self.params.replay_window_s:.0f} s"
            )
        stamp = envelope.hlc
        try:
            self.hlc.check(stamp, self._frame_wall_ms)
        except ClockSkewError as exc:
            raise GossipReject(Reason.CLOCK_SKEW, str(exc), penalise=exc.flagrant) from exc
        except ValueError as exc:  # a logical counter past the bound (the envelope refuses it first)
            raise GossipReject(Reason.CLOCK_SKEW, str(exc)) from exc
        # the clock moves once per frame, past the newest stamp that passed (_on_msgs): the same
        # clock as one update per envelope, without a timestamp issued for each
        newest = self._frame_newest
        if newest is None or (stamp.wall_ms, stamp.logical) > (newest.wall_ms, newest.logical):
            self._frame_newest = stamp

    def _submit(
        self,
        messages: list[StoredMessage] | None = None,
        audit: list[AuditRow] | None = None,
        on_commit: Callable[[Exception | None], None] | None = None,
        *,
        droppable: bool = False,
    ) -> None:
        """Every row the engine writes goes through here: the frame's pending first copies and
        settled sends go first, so rows reach the store in the order the decisions were taken."""
        self._flush_pending()
        self._writer.submit(messages or (), audit or (), on_commit, droppable=droppable)

    def _flush_pending(self) -> None:
        """Submit the rows batched per frame: first copies (one item, one commit callback) and the
        sent/forwarded rows of sends settled by an ack or a crossed copy (one item, not one each)."""
        if self._received:
            self._submit_received()
        if self._acked_rows:
            rows, self._acked_rows = self._acked_rows, []
            self._writer.submit((), rows, None)

    def _submit_received(self) -> None:
        if not self._received:
            return
        received, rows = self._received, self._received_rows
        self._received, self._received_rows = [], []
        messages = [stored for _peer, stored in received]
        self._writer.submit(messages, rows, partial(self._received_committed, received))
        # first deliveries credited per neighbour and frame, not per envelope (trust and P2)
        for peer, count in Counter(peer for peer, _stored in received).items():
            self._report(peer, Event.FIRST_DELIVERY, count)
            self.score.first_delivery(peer, count)

    def _received_committed(self, received: list[tuple[str, StoredMessage]], error: Exception | None) -> None:
        """Only a stored message is acknowledged, delivered and counted; the writer has logged a failure."""
        if error is not None:
            rows = []
            for peer, stored in received:
                self._seen.discard(stored.id)  # not stored: a later copy (or repair) must be accepted
                rows.append(self._audit(AuditEvent.REJECTED, stored.id, peer, NOT_STORED))
            self.stats.not_stored += len(received)
            self._submit(audit=rows, droppable=True)  # kept if the store takes them by then
            return
        for peer, stored in received:
            self._ack(peer, stored.id)
            self._deliver(stored)
        for topic, count in Counter(stored.topic for _peer, stored in received).items():
            self.stats.count("delivered", topic, count)

    def _duplicate_committed(self, peer: str, message_id: str, error: Exception | None) -> None:
        # still seen: the first copy was stored (its batch committed first, or it would be forgotten)
        if error is None and message_id in self._seen:
            self._ack(peer, message_id)

    def _reject(self, peer: str, message_id: str | None, reason: Reason, *, penalise: bool = True) -> None:
        self.stats.rejected[reason.value] += 1
        row = self._audit(AuditEvent.REJECTED, message_id, peer, reason.value)
        self._submit(audit=[row], droppable=True)
        if penalise:
            self._report(peer, _FEEDBACK[reason])
            if reason in _INVALID:
                self.score.invalid(peer)

    def _publisher(self, topic: str, origin: str) -> bool:
        if self._may_publish is None or topic in self.subscriptions.always:
            return True
        return self._may_publish(topic, origin)

    def _origin_verdict(self, topic: str, origin: str) -> object:
        """Whether the operator blocked the origin, or the topic's policy refuses it as a publisher:
        asked once per frame for each (topic, origin), since neither can change within a frame."""
        if self._blocked is not None and self._blocked(origin):
            return _BLOCKED_ORIGIN
        return _MAY_PUBLISH if self._publisher(topic, origin) else _NOT_PUBLISHER

    def _refuse_blocked(self, peer: str, message_id: str) -> None:
        """Not marked seen: should the operator lift the block, repair may still bring it."""
        self.stats.rejected[BLOCKED] += 1
        row = self._audit(AuditEvent.REJECTED, message_id, peer, BLOCKED)
        self._submit(audit=[row], droppable=True)

    def _report(self, peer: str, event: Event, count: int = 1) -> None:
        if self._feedback is not None:
            try:
                self._feedback(peer, event, count)
            except Exception:
                log.exception("gossip behaviour feedback failed")

    # scores

    def _graylisted(self, peer: str) -> bool:
        """Whether to ignore everything from this neighbour now; one audit row per heartbeat says so."""
        if not self.score.below(peer, self.params.graylist_threshold):
            return False
        self.stats.graylisted += 1
        now = asyncio.get_running_loop().time()
        if now - self._graylist_audited.get(peer, -math.inf) >= self.params.heartbeat_s:
            self._graylist_audited[peer] = now
            row = self._audit(AuditEvent.REJECTED, None, peer, GRAYLISTED)
            self._submit(audit=[row], droppable=True)
        return True

    def _heartbeat(self) -> None:
        """Mesh upkeep, fresh trust for the scores, and offenders below graylist disconnected."""
        self.score.refresh()
        self.mesh.maintain()
        self.score.meshed(self.mesh.members())
        floor = self.params.graylist_threshold
        for peer in self._transport.neighbours():
            if peer in self._ejected or not self.score.below(peer, floor):
                continue
            self.mesh.remove(peer)
            if self._on_offender is None:
                continue
            self._ejected.add(peer)
            self.stats.offenders += 1
            log.warning("disconnecting %s: gossip score %.1f below graylist", peer, self.score.score(peer))
            self._spawn(self._eject(peer))

    async def _eject(self, peer: str) -> None:
        assert self._on_offender is not None
        result = self._on_offender(peer)
        if inspect.isawaitable(result):
            await result

    def _announce_dont_want(self, message_id: str, topic: str, excluded: Collection[str]) -> None:
        message = {"type": MessageType.ACK.value, "ids": [], "dontwant": [message_id]}
        for peer in self.mesh.targets(topic, excluded):
            self.stats.idontwant_sent += 1
            self._spawn(self._send_quietly(peer, message))

    # outbound

    def _choose(self, excluded: Collection[str], k: int, topic: str) -> list[str]:
        """k subscribers of the topic to replace failed sends: by trust, its mesh peers first."""
        candidates = [p for p in self.mesh.subscribers(topic) if p not in excluded]
        mesh = self.mesh.meshes.get(topic, set())
        preferred = [p for p in candidates if p in mesh]
        chosen = self.mesh.rank(preferred, k) if preferred else []
        if len(chosen) < k:
            chosen += self.mesh.rank([p for p in candidates if p not in mesh], k - len(chosen))
        return chosen

    # topic control: subscriptions, GRAFT and PRUNE, as keys of an IHAVE without ids (topics.py)

    def _on_control(self, peer: str, message: dict[str, Any]) -> None:
        if "subs" in message:
            before = self.subscriptions.of(peer)
            self.subscriptions.announced(peer, check_topics(message["subs"]))
            if before != self.subscriptions.of(peer):
                self.mesh.maintain_peer(peer, first=before is None)
        if "graft" in message:
            self.mesh.on_graft(peer, message["graft"])
        if "prune" in message:
            self.mesh.on_prune(peer, message["prune"])

    async def _announce(self, peer: str) -> None:
        message = {"type": MessageType.IHAVE.value, "ids": [], "subs": self.subscriptions.announcement()}
        await self._send_quietly(peer, message)

    async def _announce_all(self) -> None:
        for peer in self._transport.neighbours():
            await self._announce(peer)

    def _control_soon(self) -> None:
        """GRAFT/PRUNE were queued: send them together once the current work is done."""
        with contextlib.suppress(RuntimeError):  # no running loop (a unit test driving the mesh)
            asyncio.get_running_loop().call_soon(self._flush_control)

    def _flush_control(self) -> None:
        for peer, control in self.mesh.take_control().items():
            self._spawn(self._send_quietly(peer, {"type": MessageType.IHAVE.value, "ids": [], **control}))

    def _holders(self, message_id: str) -> Collection[str]:
        return self.repair.holders(message_id)

    def _acked(self, message_id: str, peer: str, event: AuditEvent) -> None:
        self.repair.held_by(peer, message_id)
        if event is AuditEvent.SENT:
            self.stats.acked_sent += 1
        else:
            self.stats.acked_forwarded += 1
        self._acked_rows.append(self._audit(event, message_id, peer))

    def _ack(self, peer: str, message_id: str) -> None:
        """Queue an ack; all acks of one committed batch leave together, one message per neighbour."""
        if not self._acks:
            asyncio.get_running_loop().call_soon(self._flush_acks)
        self._acks.setdefault(peer, []).append(message_id)

    def _flush_acks(self) -> None:
        acks, self._acks = self._acks, {}
        for peer, ids in acks.items():
            for start in range(0, len(ids), MAX_IDS_PER_MESSAGE):
                chunk = ids[start : start + MAX_IDS_PER_MESSAGE]
                self._spawn(self._send_quietly(peer, {"type": MessageType.ACK.value, "ids": chunk}))

    async def _send_quietly(self, peer: str, message: dict[str, Any]) -> None:
        with contextlib.suppress(Exception):  # link gone: the sender times out and retries elsewhere
            await self._transport.send(peer, message)

    # helpers

    def _deliver(self, stored: StoredMessage) -> None:
        for topic, callback in list(self._subscribers):
            if topic is not None and topic != stored.topic:
                continue
            try:
                result = callback(stored)
                if result is not None and inspect.isawaitable(result):  # most subscribers return None
                    self._spawn(self._guard(result))
            except Exception:
                log.exception("gossip subscriber failed on %s", stored.id)

    async def _guard(self, awaitable: Awaitable[None]) -> None:
        try:
            await awaitable
        except Exception:
            log.exception("gossip subscriber failed")

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        self._tasks.spawn(coro)

    def _note_seq(self, origin: str, seq: int) -> None:
        if origin == self.peer_id:
            self._seq = max(self._seq, seq)  # our own, from before a lost store: never reuse its seq
            return
        highest = self._highest_seq
        held = highest.get(origin)
        if held is not None:
            highest.move_to_end(origin)  # most recently heard from: the last to be evicted
            if seq > held:
                highest[origin] = seq
            return
        highest[origin] = seq
        if len(highest) > MAX_TRACKED_ORIGINS:  # the least trusted of the oldest few goes
            oldest = list(islice(self._highest_seq, min(EVICTION_SAMPLE, len(self._highest_seq) - 1)))
            del self._highest_seq[min(oldest, key=self.score.trust)]

    def _audit(
        self,
        event: AuditEvent,
        message_id: str | None,
        peer: str | None,
        reason: str | None = None,
        at: float | None = None,
    ) -> AuditRow:
        row = AuditRow(self._clock() if at is None else at, event, message_id, peer, reason)
        if self._tracer is not None:
            try:
                self._tracer.trace(row)
            except Exception:
                log.exception("gossip tracer failed")
        return row

    def _stored(self, envelope: Envelope, raw: bytes, now: float) -> StoredMessage:
        # positional, in StoredMessage's field order: a NamedTuple built by keyword costs more, per envelope
        return StoredMessage(
            envelope.id,
            envelope.origin,
            envelope.seq,
            envelope.topic,
            envelope.payload,
            envelope.hops,
            envelope.hlc.to_str(),
            envelope.hlc.wall_ms / 1000.0,
            now,
            raw,
        )
