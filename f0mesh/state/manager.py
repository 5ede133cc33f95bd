"""ReplicatedState: the node's named CRDT documents, saved in the store and kept in step with the mesh.

A change is applied here first, then spread two ways. A delta is gossiped on the "state/signed" topic: fast,
and it reaches the whole mesh. Anti-entropy with a neighbour (version vectors out, missing deltas back) runs
when a link opens, every sync interval with one random neighbour, and with every neighbour soon after a
merge brought news: it repairs whatever gossip could not carry, e.g. the writes of the other side of a
partition. Deltas are CRDT states, so one that arrives twice, late or out of order does no harm.

Anything a peer sends that does not parse, has an unknown kind, would make a document too big, carries a
timestamp too far ahead, or would push a counter this node writes with out of reach (f0mesh.crdt.bounds) is
dropped with a log line (at most one per peer and reason every few seconds) and counted in ``dropped``; what
only a broken or hostile peer sends (malformed, clock_skew well past the bound, bad_counter) is also reported
to ``on_violation``. Nothing from the network raises out of here, and no saved document stops a start: one
that does not load is quarantined (kept aside as it was, listed with its reason).

Every op carries its author's Ed25519 signature over the op and the document it belongs to, checked on
every road in (gossip, anti-entropy pages, catch-up all end in _merge): a delta with an op that is unsigned
or signed by anyone but the op's origin is dropped whole ("forged"). Named documents have a write policy
(f0mesh.state.policy): ops of authors it does not name are refused, locally with 403 before anything is
applied, from the mesh with an audit row ("not_writer"). In the peer registry a node writes its own entry;
others may only mark it alive or gone, never "left", and the URL always comes from the subject's signed
record. Ops saved unsigned by an older release are signed at start when they are this node's own, and kept
as local read-only history (never sent) when they are someone else's.

Limits: op spans are not signed, so a relaying peer can claim ops it does not carry and delay their
delivery until a round with an honest peer. Tombstones older than ``tombstone_horizon_s`` are collected,
so a replica that was cut off for longer than that can bring a deleted key back with an older write.
List (RGA) tombstones go once every writer of the list has seen them (f0mesh.state.stability), so a busy
list stays near the size of its live elements; until then the document size cap bounds them.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import math
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from dataclasses import dataclass, replace
from typing import Any, Protocol

from f0mesh.crdt import (
    HLC,
    RGA,
    ClockSkewError,
    CounterError,
    HLCTimestamp,
    LWWElementSet,
    LWWMap,
    MVMap,
    VectorClock,
)
from f0mesh.errors import (
    ConflictError,
    MessageTooLargeError,
    NotFoundError,
    PolicyError,
    StoreUnavailableError,
)
from f0mesh.identity import is_peer_id, is_valid_signature
from f0mesh.log_throttle import LogThrottle
from f0mesh.peer_record import PeerRecord
from f0mesh.state.documents import (
    KINDS,
    Change,
    Document,
    InvalidChange,
    check_name,
    crdt_class,
    decode,
    format_id,
    is_empty,
    timestamps,
)
from f0mesh.state.peers import (
    ALIVE,
    GONE,
    LEFT,
    PEERS_DOC,
    PeerInfo,
    Registry,
    make_entry,
    mark_key,
    parse_entry,
    subject,
)
from f0mesh.state.policy import (
    LWW,
    POLICIES_DOC,
    RANKED,
    RESERVED_DOCS,
    TOPICS_DOC,
    Policies,
    Policy,
    check_resolution,
    stamp,
)
from f0mesh.state.policy import MAX_WRITERS as MAX_POLICY_WRITERS
from f0mesh.state.readers import PageReaders
from f0mesh.state.stability import Stability
from f0mesh.state.sync import (
    Reassembler,
    TooLarge,
    delta_pages,
    gossip_payload,
    parse_gossip,
    parse_versions,
    versions_message,
)
from f0mesh.state.topic_policy import parse_topic_policy, topic_entry, topic_view
from f0mesh.tasks import TaskSet

log = logging.getLogger("f0mesh.state")

Resolution = tuple[str, tuple[str, ...] | list[str]]  # (lww | ranked | keep-all, rank list)
MakeChange = Callable[[Document, dict[str, int] | None], Change]

STOP_TASKS_S = 5.0  # bound on the wait for cancelled background tasks when the manager stops

# Deltas of signed ops travel on their own topic: a 1.0 node (unsigned ops, topic "state") would drop
# them as malformed and hold that against their author; on a topic it does not read, it relays and
# keeps them as any message. Unsigned deltas of 1.0 nodes ("state") are ignored here, not penalised.
STATE_TOPIC = "state/signed"
LEGACY_STATE_TOPIC = "state"
STATE_TOPICS = frozenset({STATE_TOPIC, LEGACY_STATE_TOPIC})
STORE_PREFIX = "doc/"  # rows of crdt_state that hold documents; the node keeps other rows there too
QUARANTINE_PREFIX = "quarantine/"  # saved documents that did not load, kept aside as they were
# Drop reasons that an honest peer never causes; the others (limits, a kind conflict) can follow from
# concurrent honest writes and are not held against anyone.
VIOLATIONS = frozenset(
    {
        "malformed",
        "clock_skew",
        "bad_counter",
        "forged",
        "not_writer",
        "bad_policy",
        "registry_forged",
        "browser_write",
    }
)


@dataclass(frozen=True, slots=True)
class StateParams:
    max_documents: int = 256
    max_document_bytes: int = 4 << 20  # also the largest delta accepted
    page_bytes: int = 256 << 10  # anti-entropy deltas travel in pages of this size
    max_gossip_delta_bytes: int = 32 << 10  # larger deltas go by anti-entropy only (gossip caps at 64 KiB)
    flush_delay_s: float = 0.05  # merged deltas are saved, and changes gossiped, in batches this far apart
    push_delay_s: float = 0.5  # a merge that brought news starts a round with every neighbour this late
    sync_interval_s: float = 30.0  # a round with one random neighbour, repairing what gossip lost
    peer_refresh_s: float = 60.0  # this node rewrites its own registry entry this often
    gone_after_s: float = 300.0  # a peer nobody heard of for this long is marked gone
    tombstone_horizon_s: float = 86400.0  # deletes older than this are forgotten, as are left/gone peers
    collect_interval_s: float = 3600.0
    leave_timeout_s: float = 3.0
    save_timeout_s: float = 20.0  # a local write the store has not confirmed by then is answered 503


class StateStore(Protocol):
    async def put_state(self, name: str, kind: str, data: bytes) -> None: ...

    async def get_state(self, name: str) -> tuple[str, bytes] | None: ...

    async def list_states(self) -> list[tuple[str, str]]: ...


class Gossip(Protocol):
    hlc: HLC

    async def publish(self, topic: str, payload: Any) -> str: ...

    def subscribe(self, topic: str | None, callback: Callable[[Any], Any]) -> Callable[[], None]: ...


class ReplicatedState:
    """Documents by name; ``send(peer_id, message)`` puts a ctl message on that peer's link;
    ``sign(data)`` signs with this node's key; ``on_violation(peer_id, reason)`` hears of each delta
    dropped for a reason in VIOLATIONS, ``audit(peer_id, reason, detail)`` of every dropped delta;
    ``writers`` are named in the policy of every document this node creates. ``speaks(peer_id)``: the
    neighbour's wire version has signed state; state frames go to and come from only those.
    ``is_page(peer_id)`` says whether a linked peer is a web page, which only reads the documents it
    names (state.readers)."""

    def __init__(
        self,
        peer_id: str,
        store: StateStore,
        gossip: Gossip,
        *,
        send: Callable[[str, dict[str, Any]], Awaitable[None]],
        neighbours: Callable[[], Iterable[str]],
        own_record: Callable[[], PeerRecord],
        sign: Callable[[bytes], bytes],
        on_peer: Callable[[PeerInfo], None] | None = None,
        on_violation: Callable[[str, str], None] | None = None,
        audit: Callable[[str, str, str], None] | None = None,
        writers: Iterable[str] = (),
        speaks: Callable[[str], bool] = lambda _peer: True,
        is_page: Callable[[str], bool] = lambda _peer_id: False,
        params: StateParams | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.peer_id = peer_id
        self._speaks = speaks
        self.params = params or StateParams()
        self.hlc = gossip.hlc
        self.dropped: Counter[str] = Counter()
        self._store = store
        self._gossip = gossip
        self._send_fn = send
        self._neighbours = neighbours
        self._own_record = own_record
        self._on_peer = on_peer
        self._on_violation = on_violation
        self._audit = audit
        self._sign = sign
        self._writers = frozenset(writers) - {peer_id}
        self._is_page = is_page
        self._readers = PageReaders(self._send_to_page, self._refuse_page, RESERVED_DOCS)
        self._log = LogThrottle(log)
        self._clock = clock
        self._docs: dict[str, Document] = {}
        self._quarantined: dict[str, dict[str, Any]] = {}  # name -> summary with the reason
        self._reassembler = Reassembler(self.params.max_document_bytes)
        self._xfer = itertools.count(1)
        self._flush_lock = asyncio.Lock()
        self._flush_due: asyncio.TimerHandle | None = None
        self._push_due: asyncio.TimerHandle | None = None
        self._mirrored: dict[Any, Any] = {}  # registry key -> the value last reported to on_peer
        self._peers_changed = False
        self._last_collect = clock()
        self._tasks = TaskSet("state", log)
        self._stability = Stability()
        self._writes: set[asyncio.Task[Any]] = set()  # local writes being saved, never cancelled
        self._unsubscribe: list[Callable[[], None]] = []
        self._topic_index: dict[str, Policy] | None = None  # topic -> winning publish policy; None: stale
        self._running = False

    # -- lifecycle ---------------------------------------------------------------------------------

    async def start(self) -> None:
        """Load the saved documents, announce this node in the registry, start the periodic work."""
        await self._load()
        self._docs.setdefault(PEERS_DOC, Document.new(PEERS_DOC, "map", self.peer_id))
        for reserved in (POLICIES_DOC, TOPICS_DOC):
            self._docs.setdefault(reserved, Document.new(reserved, "map", self.peer_id))
        self._upgrade()
        self._peers_changed = True
        self._running = True
        self._unsubscribe = [
            self._gossip.subscribe(STATE_TOPIC, self.on_gossip),
            self._gossip.subscribe(LEGACY_STATE_TOPIC, self._on_legacy_gossip),
        ]
        self._write_own_entry(ALIVE)
        await self.flush()
        self._spawn(self._every(self.params.peer_refresh_s, self.refresh_membership))
        self._spawn(self._every(self.params.sync_interval_s, self._sync_one))

    async def stop(self) -> None:
        """Announce a clean leave (gossip, and directly to each neighbour), then save everything."""
        if not self._running:
            return
        self._running = False
        for handle in (self._flush_due, self._push_due):
            if handle:
                handle.cancel()
        await self._tasks.close(STOP_TASKS_S, grace=0)
        try:
            async with asyncio.timeout(self.params.leave_timeout_s):
                await self._leave()
        except TimeoutError:
            log.info("leave announcement timed out")
        for unsubscribe in self._unsubscribe:
            unsubscribe()
        self._unsubscribe = []
        await self.flush()

    def _upgrade(self) -> None:
        """Sign this node's ops saved unsigned by an older release; claim the documents it wrote that have
        no policy yet; name the configured writers in the policies of the documents it created."""
        registry = self._docs[PEERS_DOC]
        legacy = {
            (o, seq)
            for key, o, seq, live, _v in self._registry.records()
            if live and o != key == subject(key)
        }
        if legacy:  # entries of others written before marks were a field of their own: never shown
            registry.crdt.drop_ops(legacy)
            registry.changed(0)
        for doc in list(self._docs.values()):
            if doc.crdt.sign_ops(self.peer_id, _context(doc), self._sign):
                doc.changed(0)
        for doc in list(self._docs.values()):
            if doc.name in RESERVED_DOCS:
                continue
            policy = self.policy(doc.name)
            if policy is None and any(origin == self.peer_id for origin, _seq in doc.crdt.op_ids()):
                self._claim(doc.name)
            elif policy and policy.creator == self.peer_id and not self._writers <= policy.writers:
                self._set_policy(replace(policy, writers=policy.writers | self._writers))

    async def _leave(self) -> None:
        peers = self._docs[PEERS_DOC]
        before = peers.crdt.version()
        self._write_own_entry(LEFT)
        data = self._outgoing(peers, before).to_bytes()
        await asyncio.gather(*(self._send_delta(peer, peers, data) for peer in self._neighbours()))
        await self.flush()

    async def _load(self) -> None:
        """Load every saved document; one that does not load, or could not take another write, is
        quarantined rather than failing the start (see _quarantine)."""
        for store_name, kind in await self._store.list_states():
            aside = store_name.startswith(QUARANTINE_PREFIX)
            if not (aside or store_name.startswith(STORE_PREFIX)) or kind not in KINDS:
                continue
            name = store_name.partition("/")[2]
            row = await self._store.get_state(store_name)
            if row is None:
                continue
            try:
                doc = self._restore(name, kind, row[1])
            except Exception as exc:
                reason = f"{type(exc).__name__}: {str(exc)[:300]}"
                if aside:
                    self._quarantined.setdefault(name, _quarantined(name, kind, row[1], reason))
                else:
                    await self._quarantine(name, kind, row[1], reason)
                continue
            if aside:
                reason = "kept aside at an earlier start"
                self._quarantined.setdefault(name, _quarantined(name, kind, row[1], reason))
            else:
                self._docs[name] = doc
        log.info("loaded %d replicated documents, %d quarantined", len(self._docs), len(self._quarantined))

    def _restore(self, name: str, kind: str, data: bytes) -> Document:
        """A saved document, checked to be writable here: it decodes within every bound, encodes again, and
        its counters leave room for this node's next write."""
        if name in RESERVED_DOCS and kind != "map":
            raise ValueError(f"{name!r} is reserved for a map, not a {kind}")
        crdt = decode(kind, data, self.peer_id)
        if crdt.seq_room() < 1:
            raise CounterError(f"no seq left for this node's next write to {name!r}")
        crdt.to_bytes()
        try:
            self._observe(kind, data)
        except ClockSkewError as exc:
            log.warning("saved document %r is stamped ahead of this clock: %s", name, exc.detail)
        return Document(name, kind, crdt, len(data))

    async def _quarantine(self, name: str, kind: str, data: bytes, reason: str) -> None:
        """Keep a saved document that cannot be used aside, unchanged, under its own row for the operator
        (listed in documents() with the reason); the name starts afresh and its next save replaces the row."""
        log.warning("quarantined the saved document %r (%d bytes): %s", name, len(data), reason)
        self._quarantined[name] = _quarantined(name, kind, data, reason)
        try:
            await self._store.put_state(QUARANTINE_PREFIX + name, kind, data)
        except Exception as exc:
            log.warning("could not keep the quarantined document %r aside: %s", name, exc)

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        self._tasks.spawn(coro)

    async def _every(self, interval: float, action: Callable[[], Any]) -> None:
        """``action`` every ``interval`` from a random phase: nodes started together (a deploy, the bench)
        would otherwise all refresh their registry entries in the same second, N signed deltas and their
        duplicates at once, every period."""
        await asyncio.sleep(random.uniform(0.0, interval))
        while True:
            try:
                result = action()
                if asyncio.iscoroutine(result):
                    await result
            except Exception:
                log.exception("periodic state task failed")
            await asyncio.sleep(interval)

    # -- reading -----------------------------------------------------------------------------------

    def get(self, name: str) -> Document | None:
        return self._docs.get(name)

    def documents(self) -> list[dict[str, Any]]:
        """Summaries of the documents, then of those quarantined at start (with "quarantined": reason)."""
        live = [self._docs[name].summary() for name in sorted(self._docs)]
        return live + [self._quarantined[name] for name in sorted(self._quarantined)]

    def view(self, name: str) -> dict[str, Any]:
        """The document's view, with the write policy it is under (None for the node's own maps and for a
        document whose creator's policy has not arrived yet)."""
        policy = self.policy(name)
        view = self._existing(name).view(policy and policy.ranking())
        view["policy"] = None if policy is None else policy.view()
        return view

    def policy(self, name: str) -> Policy | None:
        return self._policies.effective(name)

    @property
    def _policies(self) -> Policies:
        doc = self._docs.get(POLICIES_DOC)
        crdt = doc.crdt if doc is not None else LWWMap(self.peer_id)  # before start: none known
        assert isinstance(crdt, LWWMap)
        return Policies(crdt)

    @property
    def _topic_policies(self) -> Policies:
        doc = self._docs.get(TOPICS_DOC)
        crdt = doc.crdt if doc is not None else LWWMap(self.peer_id)
        assert isinstance(crdt, LWWMap)
        return Policies(crdt, parse_topic_policy)

    def topic_policy(self, topic: str) -> Policy | None:
        """The winning publish policy of a topic (writers: its publishers), None when it is open."""
        if self._topic_index is None:
            self._topic_index = self._topic_policies.winners()
        return self._topic_index.get(topic)

    def may_publish(self, topic: str, origin: str) -> bool:
        """Whether origin may publish to topic: asked by the gossip engine for every envelope."""
        policy = self.topic_policy(topic)
        return policy is None or policy.allows(origin)

    def topic_policies(self) -> list[dict[str, Any]]:
        self.topic_policy("")
        return [topic_view(self._topic_index[topic]) for topic in sorted(self._topic_index or ())]

    async def set_topic_policy(self, topic: str, publishers: Iterable[str]) -> dict[str, Any]:
        """Declare who may publish to a topic (this node always may), or change the list of a policy this
        node created; 403 when another node's create won. Answers once saved and gossiped."""
        publishers = set(publishers) - {self.peer_id}
        bad = [p for p in publishers if not is_peer_id(p)]
        if bad:
            raise InvalidChange(f"not a PeerId: {bad[0][:80]!r}", code="bad_peer_id")
        if len(publishers) > MAX_POLICY_WRITERS:
            raise InvalidChange(f"at most {MAX_POLICY_WRITERS} publishers", code="too_many_publishers")
        async with self._flush_lock:
            held = self.topic_policy(topic)
            if held is not None and held.creator != self.peer_id:
                raise PolicyError(f"the publish policy of {topic!r} was created by {held.creator}")
            if held is None:
                records = self._topic_policies.crdt.records()
                own = sum(1 for _key, origin, *_rest in records if origin == self.peer_id)
                if own >= self.params.max_documents:
                    raise ConflictError(
                        f"this node created the maximum of {self.params.max_documents} topic policies",
                        code="too_many_policies",
                    )
            created = held.created if held is not None else stamp(self.hlc.now())
            policy = Policy(topic, self.peer_id, created, frozenset({self.peer_id, *publishers}))
            doc = self._docs[TOPICS_DOC]
            before = doc.crdt.version()
            doc.crdt.set((topic, self.peer_id), topic_entry(policy), self.hlc.now())
            doc.crdt.sign_since(before, self.peer_id, _context(doc), self._sign)
            self._topic_index = None
            self._changed_here(doc, before, 256)
        await self.flush()
        return topic_view(policy)

    def conflicts(self, name: str) -> list[dict[str, Any]]:
        policy = self.policy(name)
        return self._existing(name).conflicts(
            policy and policy.ranking(), policy.resolution if policy else LWW
        )

    def _existing(self, name: str) -> Document:
        doc = self._docs.get(name)
        if doc is None:
            raise NotFoundError(f"no document named {name[:80]!r}")
        return doc

    # -- local changes -----------------------------------------------------------------------------

    async def update(self, name: str, change: Change, resolution: Resolution | None = None) -> dict[str, Any]:
        """Apply a change (creating the document), save and gossip it; returns the document's view.

        Raises InvalidChange (422), ConflictError (409: other kind, or too many documents), PolicyError
        (403: the registry is the node's own) or MessageTooLargeError (413) before changing anything;
        StorageFullError (507) or StoreUnavailableError (503) when the store did not take it. resolution
        (name, rank list) is chosen for a document this write creates; 409 if one that exists differs.
        """
        return await self._write(name, change.kind, lambda _doc, _rank: change, resolution)

    async def replace(
        self, name: str, kind: str, value: Any, resolution: Resolution | None = None
    ) -> dict[str, Any]:
        """Make the content equal to value; only what differs is written, so unchanged keys keep their
        timestamps and a concurrent write to another key survives."""
        return await self._write(name, kind, lambda doc, rank: doc.replacement(value, rank), resolution)

    async def _write(
        self, name: str, kind: str, make_change: MakeChange, resolution: Resolution | None
    ) -> dict[str, Any]:
        """Answer only once the change is saved: what is acknowledged survives a crash.

        The save runs in a task of its own, so neither a timeout nor a caller that went away can part
        the store from memory: a save that ends after the answer (503) is still adopted.
        """
        check_name(name)
        if name in RESERVED_DOCS:
            what = {PEERS_DOC: "the peer registry", TOPICS_DOC: "the topic policies"}.get(
                name, "the write policies"
            )
            raise PolicyError(f"{name!r} is {what}, written by the node itself", code="reserved")
        task = asyncio.ensure_future(self._save_change(name, kind, make_change, resolution))
        self._writes.add(task)
        task.add_done_callback(self._write_done)
        try:
            doc, inserted = await asyncio.wait_for(asyncio.shield(task), self.params.save_timeout_s)
        except TimeoutError:
            raise StoreUnavailableError(
                f"the store did not confirm the write of {name!r} within {self.params.save_timeout_s:g} s; "
                "it takes effect if the store takes it later"
            ) from None
        await self.flush()  # gossip it now
        policy = self.policy(name)
        view = doc.view(policy and policy.ranking())
        if inserted:
            view["inserted"] = [format_id(i) for i in inserted]
        return view

    def _write_done(self, task: asyncio.Task[Any]) -> None:
        self._writes.discard(task)
        if not task.cancelled():
            task.exception()  # retrieved here: its caller may have stopped waiting

    async def _save_change(
        self, name: str, kind: str, make_change: MakeChange, resolution: Resolution | None
    ) -> tuple[Document, list[Any]]:
        """Apply the change to a private copy, save the copy, then merge it in.

        Until the save succeeded no reader, gossip or anti-entropy sees the change, so a refused save
        leaves nothing behind: the copy is dropped, and its op numbers were never shown to anyone.
        """
        async with self._flush_lock:
            live = self._docs.get(name)
            policy = self.policy(name)
            resolution = self._resolution(name, kind, policy, resolution)
            if live is None:
                if len(self._docs) >= self.params.max_documents:
                    raise ConflictError(
                        f"this node holds the maximum of {self.params.max_documents} documents",
                        code="too_many_documents",
                    )
                draft = Document.new(name, kind, self.peer_id, siblings=resolution[0] != LWW)
            elif live.kind != kind:
                raise ConflictError(f"{name!r} is a {live.kind}, not a {kind}", code="kind_mismatch")
            else:
                draft = live.copy()
            if policy is not None and not policy.allows(self.peer_id):
                raise PolicyError(
                    f"this node is not a writer of {name!r}: ask the operator of {policy.creator} to add "
                    f"{self.peer_id}",
                    code="not_writer",
                )
            change = make_change(draft, policy and policy.ranking())
            grown = draft.check(change)
            if (live.size_estimate if live else 0) + grown > self.params.max_document_bytes:
                raise MessageTooLargeError(
                    f"{name!r} would grow past the {self.params.max_document_bytes} byte document limit"
                )
            generation = live.generation if live else 0
            before = draft.crdt.version()
            inserted = draft.apply(change, self.hlc)
            if live is not None and draft.crdt.version() == before:
                return live, inserted  # nothing to write
            draft.crdt.sign_since(before, self.peer_id, _context(draft), self._sign)
            data = draft.crdt.to_bytes()
            await self._store.put_state(STORE_PREFIX + name, kind, data)
            live = self._adopt(draft, generation, before, data)
            if policy is None:
                # after adopting: a creator's policy that came in meanwhile and resolves otherwise wins
                # the race, and the claim's enforcement then finds the document to rebuild
                self._claim(name, resolution)
            return live, inserted

    def _resolution(
        self, name: str, kind: str, policy: Policy | None, asked: Resolution | None
    ) -> Resolution:
        """How a write resolves: as the document's policy says; asked for, only as it says (409), or
        for a document this write creates (422 when it does not fit)."""
        if policy is not None:
            held = (policy.resolution, policy.rank)
            if asked is not None and (asked[0], tuple(asked[1])) != held:
                raise ConflictError(
                    f"{name!r} resolves by {policy.resolution}, ranked {list(policy.rank)}",
                    code="resolution_mismatch",
                )
            return held
        if asked is None or (asked[0] == LWW and not asked[1]):
            return (LWW, ())
        try:
            strangers = [p for p in asked[1] if not is_peer_id(p)]
            if strangers:
                raise ValueError(f"the rank list names a writer that is no PeerId: {strangers[0][:80]!r}")
            if kind != "map":
                raise ValueError(
                    f"a {kind} resolves by the last writer only; ranked and keep-all are for maps"
                )
            check_resolution(asked[0], asked[1], self._writers | {self.peer_id} | set(asked[1]))
        except ValueError as exc:
            raise InvalidChange(str(exc), code="bad_resolution") from exc
        return (asked[0], tuple(asked[1]))

    # -- write policies ----------------------------------------------------------------------------

    def _claim(self, name: str, resolution: Resolution = (LWW, ())) -> None:
        """Create the policy of a document this node creates: itself, the configured writers and those
        ranked, and how concurrent writes resolve."""
        created = stamp(self.hlc.now())
        writers = self._writers | {self.peer_id} | set(resolution[1])
        self._set_policy(Policy(name, self.peer_id, created, writers, resolution[0], tuple(resolution[1])))

    def _set_policy(self, policy: Policy) -> None:
        doc = self._docs[POLICIES_DOC]
        before = doc.crdt.version()
        try:
            doc.crdt.set((policy.name, policy.creator), policy.entry(), self.hlc.now())
        except CounterError as exc:
            self._log.warning("policies", "cannot write the policies: %s", exc)
            return
        doc.crdt.sign_since(before, self.peer_id, _context(doc), self._sign)
        self._changed_here(doc, before, 256)
        self._enforce(policy.name)

    async def set_writers(self, name: str, add: Iterable[str], remove: Iterable[str]) -> dict[str, Any]:
        """Name or unname writers in the policy of a document this node created; returns the policy.

        Every replica then evicts the ops of a writer removed here (listed with the conflicts), so this
        also undoes what a compromised writer wrote."""
        check_name(name)
        add, remove = set(add), set(remove)
        bad = [w for w in add | remove if not is_peer_id(w)]
        if bad:
            raise InvalidChange(f"not a PeerId: {bad[0][:80]!r}", code="bad_peer_id")
        async with self._flush_lock:
            policy = self.policy(name)
            if policy is None:
                raise NotFoundError(f"no policy for {name[:80]!r}")
            if policy.creator != self.peer_id:
                raise PolicyError(f"only the creator {policy.creator} changes the writers of {name!r}")
            writers = (policy.writers | add) - (remove - {self.peer_id})
            if len(writers) > MAX_POLICY_WRITERS:
                raise InvalidChange(f"at most {MAX_POLICY_WRITERS} writers", code="too_many_writers")
            if writers != policy.writers:
                rank = tuple(p for p in policy.rank if p in writers)
                rank = rank or ((self.peer_id,) if policy.resolution == RANKED else ())
                self._set_policy(replace(policy, writers=frozenset(writers), rank=rank))
        await self.flush()
        return self._policies.effective(name).view()  # type: ignore[union-attr]

    def _enforce(self, name: str) -> None:
        """Evict the signed ops of authors the document's policy does not name (a create race lost, or a
        policy that arrived after the document); they are listed with its conflicts. Unsigned ops of an
        older release stay as local history."""
        doc, policy = self._docs.get(name), self.policy(name)
        if doc is None or policy is None:
            return
        if doc.kind == "map" and isinstance(doc.crdt, MVMap) != (policy.resolution != LWW):
            # a create race lost to a creator that resolves otherwise: start over as the winner's kind
            log.info(
                "%r: resolved by %s, as its policy says: its ops here are dropped", name, policy.resolution
            )
            doc.crdt = Document.new(name, "map", self.peer_id, siblings=policy.resolution != LWW).crdt
            doc.changed(0)
            self._schedule_flush()
            self._schedule_push()
            return
        unsigned = doc.crdt.unsigned()
        gone = {op for op in doc.crdt.op_ids() if not policy.allows(op[0]) and op not in unsigned}
        if not gone:
            return
        doc.crdt.evict(gone)
        doc.crdt.log_refused(_refused_entries(gone, policy))
        log.info("%r: evicted %d ops of authors its policy does not name", name, len(gone))
        doc.changed(0)
        self._schedule_flush()
        self._schedule_push()  # bring back what the evicted ops had displaced

    def _adopt(self, draft: Document, generation: int, before: VectorClock, data: bytes) -> Document:
        """Merge a saved draft into the live document; what merged meanwhile stays unsaved (dirty)."""
        live = self._docs.get(draft.name)
        if live is None or live.kind != draft.kind:
            live = self._docs[draft.name] = draft
            generation = draft.generation
        elif type(live.crdt) is type(draft.crdt):
            live.crdt.merge(draft.crdt.delta_since(before))
        else:
            # a policy that came in while the draft was saved rebuilt the map as the other kind
            # (_enforce): the draft's ops are dropped, as that policy says; the map stays unsaved
            log.info("%r: a write made before its policy arrived is dropped", draft.name)
        live.saved(data, generation)
        if live.unsent is None:
            live.unsent = before
        self._schedule_flush()
        return live

    def _changed_here(self, doc: Document, before: VectorClock, grown: int) -> None:
        doc.changed(grown)
        if doc.unsent is None:
            doc.unsent = before
        if doc.name == PEERS_DOC:
            self._peers_changed = True
        self._schedule_flush()

    # -- the peer registry -------------------------------------------------------------------------

    def peer_seen(self, record: PeerRecord) -> None:
        """A verified record of another peer (peer exchange): write it when it tells the registry news.

        Rewritten only when the entry is missing, says the peer is not alive, has another URL or
        location, or is older than peer_refresh_s, so steady peer exchange costs no writes.
        """
        if record.peer_id == self.peer_id or not self._running:
            return
        current = self._peers.info(record.peer_id, self._clock())
        if current is not None:
            same = (current.status, current.url, current.location, current.relays) == (
                ALIVE,
                record.url,
                record.location,
                record.relays,
            )
            if record.seen <= current.last_seen + (self.params.peer_refresh_s if same else 0.0):
                return
        self._set_peer(mark_key(record.peer_id), make_entry(record, ALIVE, record.seen))

    def refresh_membership(self) -> None:
        """Refresh this node's entry, mark silent peers gone, forget long-departed ones, collect tombstones.

        A node marks others gone only while it has a link itself: an isolated node hears from nobody and
        must not conclude that everybody left.
        """
        now = self._clock()
        self._write_own_entry(ALIVE)
        linked = set(self._neighbours())
        for peer_id in self._peers.subjects():
            info = self._peers.info(peer_id, now)
            if info is None or peer_id == self.peer_id:
                continue
            silent = now - info.last_seen
            if (
                info.status == ALIVE
                and silent > self.params.gone_after_s
                and linked
                and peer_id not in linked
            ):
                self._set_peer(mark_key(peer_id), {**(self._peers.newest(peer_id) or {}), "status": GONE})
            elif info.status != ALIVE and silent > self.params.tombstone_horizon_s:
                self._delete_peer(peer_id)
        if now - self._last_collect >= self.params.collect_interval_s:
            self.collect_tombstones()
        else:
            self.collect_lists()

    @property
    def _registry(self) -> LWWMap:
        registry = self._docs[PEERS_DOC].crdt
        assert isinstance(registry, LWWMap)
        return registry

    @property
    def _peers(self) -> Registry:
        return Registry(self._registry)

    def registered(self, peer_id: str) -> bool:
        """Whether the registry holds anything of the peer (its own entry or a mark), tombstones aside."""
        return PEERS_DOC in self._docs and any(v is not None for v in self._peers.fields(peer_id))

    def _write_own_entry(self, status: str) -> None:
        self._set_peer(self.peer_id, make_entry(self._own_record(), status, self._clock()))

    def _set_peer(self, key: str | tuple[str, str], value: dict[str, Any]) -> None:
        doc = self._docs[PEERS_DOC]
        before = doc.crdt.version()
        try:
            self._registry.set(key, value, self.hlc.now())
        except CounterError as exc:
            self._log.warning("registry", "cannot write the peer registry: %s", exc)
            return
        doc.crdt.sign_since(before, self.peer_id, _context(doc), self._sign)
        self._changed_here(doc, before, 512)

    def _delete_peer(self, peer_id: str) -> None:
        doc = self._docs[PEERS_DOC]
        before = doc.crdt.version()
        try:
            for key in (peer_id, mark_key(peer_id)):
                if key in self._registry:
                    self._registry.delete(key, self.hlc.now())
        except CounterError as exc:
            self._log.warning("registry", "cannot write the peer registry: %s", exc)
            return
        doc.crdt.sign_since(before, self.peer_id, _context(doc), self._sign)
        self._changed_here(doc, before, 128)

    def collect_tombstones(self) -> int:
        """Forget deletes older than the horizon in every map and set; returns how many records went."""
        now = self._clock()
        self._last_collect = now
        horizon = HLCTimestamp(max(0, int((now - self.params.tombstone_horizon_s) * 1000)), 0, "")
        total = 0
        for doc in self._docs.values():
            if isinstance(doc.crdt, LWWMap | MVMap | LWWElementSet):
                collected = doc.crdt.collect_tombstones(horizon)
                if collected:
                    doc.changed(0)
                    total += collected
        if total:
            log.info("collected %d tombstones older than %s", total, horizon)
            self._schedule_flush()
        return total + self.collect_lists()

    def collect_lists(self) -> int:
        """Forget list tombstones every writer has seen (f0mesh.state.stability); returns how many went."""
        total = 0
        for doc in self._docs.values():
            policy = self.policy(doc.name)
            if isinstance(doc.crdt, RGA) and policy is not None:
                stable = self._stability.stable(doc.name, self.peer_id, doc.crdt.version(), policy.writers)
                collected = doc.crdt.collect(stable) if stable is not None else 0
                if collected:
                    doc.changed(0)
                    total += collected
        self._stability.forget(set(self._docs))
        if total:
            log.info("collected %d list tombstones every writer has seen", total)
            self._schedule_flush()
        return total

    def _heard(self, peer_id: str, theirs: dict[str, tuple[str, VectorClock]]) -> None:
        """Keep the versions a writer of a list reports of it, for collect_lists."""
        for name, (kind, version) in theirs.items():
            doc = self._docs.get(name)
            if kind != "list" or doc is None or doc.kind != "list":
                continue
            policy = self.policy(name)
            if policy is not None and policy.allows(peer_id):
                self._stability.heard(peer_id, name, version)

    def _mirror_peers(self) -> None:
        """Report registry entries that changed since the last report (the node keeps mesh_peers in step)."""
        self._peers_changed = False
        registry = self._peers
        own = registry.info(self.peer_id, self._clock())
        if self._running and (own is None or own.status != ALIVE):
            self._write_own_entry(ALIVE)  # refute a "gone" (or a stale "left") written about this node
        if self._on_peer is None:
            return
        for peer_id in registry.subjects():
            fields = registry.fields(peer_id)
            if peer_id == self.peer_id or self._mirrored.get(peer_id) == fields:
                continue
            self._mirrored[peer_id] = fields
            info = registry.info(peer_id, self._clock())
            if info is not None:
                try:
                    self._on_peer(info)
                except Exception:
                    log.exception("mirroring peer %s failed", peer_id)

    # -- saving and gossiping ----------------------------------------------------------------------

    def _schedule_flush(self, delay: float | None = None) -> None:
        if self._flush_due is None and self._running:
            delay = self.params.flush_delay_s if delay is None else delay
            self._flush_due = asyncio.get_running_loop().call_later(delay, self._flush_soon)

    def _flush_soon(self) -> None:
        self._flush_due = None
        self._spawn(self.flush())

    async def flush(self) -> None:
        """Gossip every change not yet gossiped and save every changed document."""
        async with self._flush_lock:
            if self._flush_due is not None:
                self._flush_due.cancel()
                self._flush_due = None
            if self._peers_changed:
                self._mirror_peers()
            docs = list(self._docs.values())
            for doc in docs:
                if (doc.dirty or doc.unsent is not None) and self._readers.reading(doc.name):
                    self._spawn(self._readers.push(doc.name, doc.crdt.version()))
            for doc in docs:
                if doc.unsent is not None:
                    since, doc.unsent = doc.unsent, None
                    delta = self._outgoing(doc, since)
                    if not is_empty(delta):
                        await self._publish(doc, delta.to_bytes())
                if doc.dirty:
                    await self._save(doc)

    def _outgoing(self, doc: Document, version: VectorClock) -> Any:
        """What a holder of `version` lacks, less the unsigned ops of older releases (read-only here)."""
        delta = doc.crdt.delta_since(version)
        delta.drop_ops(delta.unsigned())
        return delta

    async def _publish(self, doc: Document, data: bytes) -> None:
        if len(data) > self.params.max_gossip_delta_bytes:
            self._schedule_push()
            return
        try:
            await self._gossip.publish(STATE_TOPIC, gossip_payload(doc.name, doc.kind, data))
        except Exception as exc:
            log.info("gossip of %r failed, left to anti-entropy: %s", doc.name, exc)
            self._schedule_push()

    async def _save(self, doc: Document) -> None:
        generation = doc.generation
        data = doc.crdt.to_bytes()
        try:
            await self._store.put_state(STORE_PREFIX + doc.name, doc.kind, data)
        except StoreUnavailableError as exc:  # a full disk: said once every few seconds, not per document
            self._log.warning("save", "documents not saved, retrying every second: %s", exc.detail)
            self._schedule_flush(1.0)
            return
        except Exception:
            log.exception("could not save document %r; retrying", doc.name)
            self._schedule_flush(1.0)
            return
        doc.saved(data, generation)

    # -- from the network --------------------------------------------------------------------------

    def on_gossip(self, message: Any) -> None:
        """Subscriber of the "state/signed" topic (a gossip StoredMessage: origin, payload)."""
        if message.origin == self.peer_id:
            return
        try:
            name, kind, data = parse_gossip(message.payload, self.params.max_document_bytes)
        except TooLarge as exc:
            self._drop("too_large", message.origin, str(exc))
            return
        except ValueError as exc:
            self._drop("malformed", message.origin, str(exc))
            return
        self._merge(name, kind, data, message.origin)

    def _on_legacy_gossip(self, message: Any) -> None:
        if message.origin != self.peer_id:
            self._log.info((message.origin, "old"), "ignored unsigned state of %s (wire 1.0)", message.origin)

    async def on_ctl(self, peer_id: str, message: dict[str, Any]) -> None:
        """A ``{"t": "state"}`` message from a linked peer."""
        if not self._speaks(peer_id):  # its unsigned ops would all be dropped as forged: not its fault
            self._log.info(
                (peer_id, "old"), "ignored state from %s: its wire version predates signed state", peer_id
            )
            return
        try:
            op = message.get("op")
            if self._is_page(peer_id):
                await self._readers.on_ctl(peer_id, message)
            elif op == "versions":
                theirs = parse_versions(message, self.params.max_documents)
                self._heard(peer_id, theirs)
                self._spawn(self._answer(peer_id, theirs, reply=message.get("reply") is True))
            elif op == "delta":
                whole = self._reassembler.feed(peer_id, message)
                if whole is not None and self._merge(*whole, peer_id):
                    self._schedule_push()
            else:
                raise ValueError(f"unknown state op {str(op)[:20]!r}")
        except TooLarge as exc:
            self._drop("too_large", peer_id, str(exc))
        except ValueError as exc:
            self._drop("malformed", peer_id, str(exc))
        except Exception:
            self.dropped["error"] += 1
            log.exception("state message from %s failed", peer_id)

    def on_link_open(self, peer_id: str) -> None:
        """Both ends of a new link offer their versions, so each learns what the other lacks."""
        if self._running:
            self._spawn(self._send(peer_id, versions_message(self._docs.values(), reply=False)))

    def _merge(self, name: str, kind: str, data: bytes, source: str) -> bool:
        """Merge a peer's delta; True when it brought ops this replica did not have."""
        doc = self._docs.get(name)
        if doc is not None and (doc.kind != kind or type(doc.crdt) is not crdt_class(kind, data)):
            what = f"a {kind}" if doc.kind != kind else "resolved otherwise"
            self._drop("kind_mismatch", source, f"{name!r} is a {doc.kind} here, the delta {what}")
            return False
        if doc is None and len(self._docs) >= self.params.max_documents:
            self._drop("too_many_documents", source, f"no room for {name!r}")
            return False
        if (doc.size_estimate if doc else 0) + len(data) > self.params.max_document_bytes:
            self._drop("too_large", source, f"{name!r} would exceed {self.params.max_document_bytes} bytes")
            return False
        try:
            delta = decode(kind, data)
            target = doc if doc is not None else Document(name, kind, type(delta)(self.peer_id))
            target.crdt.admit(delta)
            if is_empty(delta) or not self._authentic(target, delta, source):
                return False
            self._observe(kind, data)
        except ClockSkewError as exc:
            self._drop("clock_skew", source, f"{name!r}: {exc.detail}", violation=exc.flagrant)
            return False
        except CounterError as exc:
            self._drop("bad_counter", source, f"{name!r}: {exc}")
            return False
        except (ValueError, TypeError) as exc:
            self._drop("malformed", source, f"{name!r}: {exc}")
            return False
        if not self._allowed(target, delta, source):
            return False
        if doc is None:
            doc = self._docs[name] = target
        before = doc.crdt.version()
        doc.crdt.merge(delta)
        doc.changed(len(data))
        if name == PEERS_DOC:
            self._peers_changed = True
        if name == TOPICS_DOC:
            self._topic_index = None
        if name == POLICIES_DOC:
            for named in self._policies.names(key for key, *_rest in delta.records()):
                self._enforce(named)
        self._schedule_flush()
        return doc.crdt.version() != before

    def _authentic(self, doc: Document, delta: Any, source: str) -> bool:
        """Every op signed by its origin, over this document, and stamped by its origin's clock: else the
        delta is dropped whole."""
        for origin, seq in delta.misstamped():
            self._drop("forged", source, f"{doc.name!r}: op ({origin}, {seq}) is stamped by another clock")
            return False
        for origin, seq, data, sig in delta.signed_ops(_context(doc)):
            if sig is None or not is_valid_signature(origin, data, sig):
                what = "unsigned" if sig is None else "not signed by its origin"
                self._drop("forged", source, f"{doc.name!r}: op ({origin}, {seq}) is {what}")
                return False
        return True

    def _allowed(self, doc: Document, delta: Any, source: str) -> bool:
        """The write rules of the reserved maps, and the policy of a named document.

        Ops of authors a document's policy does not name are cut out of the delta (the rest merges) and
        listed with its conflicts; the sender pays unless the authors lost a create race for the name, which
        an honest relay carries before it hears who won."""
        if doc.name == PEERS_DOC:
            assert isinstance(delta, LWWMap)
            now, early, legacy = self._clock(), set(), set()
            for key, origin, seq, live, value in delta.records():
                peer_id = subject(key)
                if origin == key:
                    continue
                if peer_id is None:
                    self._drop("registry_forged", source, f"{origin} wrote the key {str(key)[:80]}")
                    return False
                if live:
                    info = parse_entry(peer_id, value, math.inf)  # a clock ahead is no forgery
                    if info is None or info.status == LEFT:
                        self._drop("registry_forged", source, f"{origin} wrote the entry of {peer_id[:60]}")
                        return False
                    if key == peer_id:
                        legacy.add((origin, seq))  # only the peer writes its own entry; others write a mark
                elif (held := self._peers.info(peer_id, now)) and held.status == ALIVE:
                    early.add((origin, seq))
            if legacy:  # what an older release wrote: never shown, not held against the sender
                delta.drop_ops(legacy)
                self._drop(
                    "registry_legacy", source, f"{len(legacy)} entries written by others", violation=False
                )
            if early:  # an honest node forgets only long-silent peers: one alive here stays
                delta.drop_ops(early)
                detail = f"{len(early)} deletes of peers alive here"
                self._drop("early_delete", source, detail, violation=False)
            return True
        if doc.name in (POLICIES_DOC, TOPICS_DOC):
            assert isinstance(delta, LWWMap)
            policies = self._policies if doc.name == POLICIES_DOC else self._topic_policies
            why = policies.check_delta(delta, self.params.max_documents)
            if why is not None:
                self._drop("bad_policy", source, why)
                return False
            return True
        policy = self.policy(doc.name)
        if policy is None:
            return True  # its policy has not arrived: _enforce runs when it does
        refused = {op for op in delta.op_ids() if not policy.allows(op[0])}
        if not refused:
            return True
        authors = {origin for origin, _seq in refused}
        racers = {p.creator for p in self._policies.all(doc.name)}
        delta.drop_ops(refused)
        doc.crdt.log_refused(_refused_entries(refused, policy))
        detail = f"{doc.name!r}: {len(refused)} ops by {len(authors)} authors its policy does not name"
        self._drop("not_writer", source, detail, violation=not authors <= racers)
        return any(True for _op in delta.op_ids())

    def _observe(self, kind: str, data: bytes) -> None:
        """Every timestamp must be an HLC one, none too far ahead; the clock moves past the newest, so a
        later local write beats every write this replica has seen."""
        stamps = timestamps(kind, data)
        if not all(isinstance(ts, HLCTimestamp) for ts in stamps):
            raise ValueError("timestamps must be HLC timestamps")
        if stamps:
            self.hlc.update(max(stamps))

    def _drop(self, reason: str, source: str, detail: str, *, violation: bool = True) -> None:
        """Count and log a refused delta; a VIOLATIONS reason also costs the sender behaviour score, except
        a stamp only a little too far ahead (see ClockSkewError.flagrant)."""
        self.dropped[reason] += 1
        self._log.info((source, reason), "dropped state from %s (%s): %s", source, reason, detail[:300])
        if self._audit is not None:
            try:
                self._audit(source, f"state_{reason}", detail[:300])
            except Exception:
                log.exception("state audit callback failed")
        if violation and reason in VIOLATIONS and self._on_violation is not None:
            try:
                self._on_violation(source, reason)
            except Exception:
                log.exception("state violation callback failed")

    # -- anti-entropy ------------------------------------------------------------------------------

    async def _answer(self, peer_id: str, theirs: dict[str, tuple[str, VectorClock]], *, reply: bool) -> None:
        if reply and not await self._send(peer_id, versions_message(self._docs.values(), reply=False)):
            return
        for doc in list(self._docs.values()):
            kind, version = theirs.get(doc.name, (doc.kind, VectorClock()))
            if kind != doc.kind:
                continue  # the peer drops what we would send; counted there
            delta = self._outgoing(doc, version)
            if not is_empty(delta) and not await self._send_delta(peer_id, doc, delta.to_bytes()):
                return

    async def _send_to_page(
        self, peer_id: str, name: str, kind: str, version: VectorClock
    ) -> VectorClock | None:
        """What a page reading the document lacks of it; the version the page then holds."""
        doc = self._docs.get(name)
        if doc is None or doc.kind != kind:
            return version  # it may come later (or the page named the wrong kind: it waits)
        held = doc.crdt.version()
        delta = self._outgoing(doc, version)
        if not is_empty(delta) and not await self._send_delta(peer_id, doc, delta.to_bytes()):
            return None
        held.merge(version)
        return held

    def _refuse_page(self, peer_id: str, reason: str, detail: str) -> None:
        self._drop(reason, peer_id, detail, violation=reason == "browser_write")

    async def _send_delta(self, peer_id: str, doc: Document, data: bytes) -> bool:
        for page in delta_pages(doc.name, doc.kind, data, next(self._xfer), self.params.page_bytes):
            if not await self._send(peer_id, page):
                return False
        return True

    async def _send(self, peer_id: str, message: dict[str, Any]) -> bool:
        if not self._speaks(peer_id):
            return False
        try:
            await self._send_fn(peer_id, message)
            return True
        except Exception as exc:
            log.debug("state message to %s not sent: %s", peer_id, exc)
            return False

    def _schedule_push(self) -> None:
        if self._push_due is None and self._running:
            self._push_due = asyncio.get_running_loop().call_later(self.params.push_delay_s, self._push_now)

    def _push_now(self) -> None:
        """Ask every neighbour for its versions: each then gets what it lacks of the news merged here."""
        self._push_due = None
        message = versions_message(self._docs.values(), reply=True)
        for peer_id in self._neighbours():
            self._spawn(self._send(peer_id, message))

    async def _sync_one(self) -> None:
        neighbours = [peer for peer in self._neighbours() if self._speaks(peer)]
        if neighbours:
            await self._send(random.choice(neighbours), versions_message(self._docs.values(), reply=True))


def _context(doc: Document) -> str:
    """What each op's signature binds it to: this document, so it cannot be replayed into another."""
    return f"{doc.kind}/{doc.name}"


def _refused_entries(ops: Iterable[tuple[str, int]], policy: Policy) -> list[dict[str, Any]]:
    return [
        {
            "key": None,
            "discarded_origin": origin,
            "discarded_seq": seq,
            "kept_origin": policy.creator,
            "resolution": f"refused: {origin} is not a writer in the policy of {policy.creator}, "
            f"created at {policy.created[0]} ms",
        }
        for origin, seq in sorted(ops)
    ]


def _quarantined(name: str, kind: str, data: bytes, reason: str) -> dict[str, Any]:
    return {"name": name, "kind": kind, "size": 0, "bytes": len(data), "quarantined": reason}
