"""Peer exchange and bootstrap: how a node learns peers to dial.

On every link open and every ``PEX_INTERVAL_S`` a node sends its neighbours its own signed record and
the freshest ones of its peer store. Peer exchange is how a neighbour makes this node spend effort
(dials, HTTP requests, rows), so it is believed only from a pre-trusted (bootstrap) peer, one the
operator trusts, or one whose score reaches ``--pex-min-trust`` times an even share; anything else is
dropped with an audit row. Records go to the peer store, never to the registry on their subject's
behalf (the registry's entries come from each subject's own writes).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from f0mesh.address_policy import AddressPolicy
from f0mesh.config import NodeConfig
from f0mesh.ctl import CtlKind
from f0mesh.direct import public_bytes, x25519_key
from f0mesh.errors import PeerError
from f0mesh.gossip.topics import WILDCARD
from f0mesh.identity import Identity, is_peer_id
from f0mesh.log_throttle import LogThrottle
from f0mesh.membership import Membership
from f0mesh.peer_book import PeerBook
from f0mesh.peer_record import PeerRecord
from f0mesh.peer_store import PeerStore, url_allowed
from f0mesh.rtc.link_manager import LinkManager
from f0mesh.rtc.signaling_client import SignalingClient
from f0mesh.store import Store
from f0mesh.tasks import TaskSet
from f0mesh.trust import TrustService
from f0mesh.wire import V1_1

log = logging.getLogger(__name__)

PEX_INTERVAL_S = 30.0
PEX_MAX_RECORDS = 64
# The node's own opinion of a --bootstrap peer, unless its operator set one: the operator chose that
# peer as its entry to the mesh, which is why it is also pre-trusted. Without an opinion, the node's
# own edges come from behaviour alone, and a Sybil that relays its group's messages earns as heavy an
# edge as the bootstrap peer, handing the group as much of this node's trust.
BOOTSTRAP_OPINION = 1.0
BOOTSTRAP_MAX_DELAY_S = 30.0


class PeerExchange:
    def __init__(
        self,
        identity: Identity,
        config: NodeConfig,
        book: PeerBook,
        records: PeerStore,
        trust: TrustService,
        links: LinkManager,
        membership: Membership,
        policy: AddressPolicy,
        client: SignalingClient,
        store: Store,
        tasks: TaskSet,
        *,
        wake: Callable[[], None],
        violated: Callable[[str, str], None],
        topics: Callable[[], list[str]] = list,
    ) -> None:
        """``wake()`` tells the connection manager there are new candidates; ``violated(peer, what)``
        charges a peer's behaviour score for a malformed message; ``topics()`` are the gossip topics
        this node subscribes to, named in its record unless they include every topic (``*``)."""
        self.identity = identity
        self.tags = config.tags
        self.x25519 = public_bytes(x25519_key(identity))  # what direct messages here are sealed to
        self.url = config.advertised_url
        self.location = config.location
        self.private = config.no_public_url
        self.pex_min_trust = config.pex_min_trust
        self.book = book
        self.records = records
        self.trust = trust
        self.links = links
        self.membership = membership
        self.policy = policy
        self.client = client
        self.store = store
        self.tasks = tasks
        self._wake = wake
        self._violated = violated
        self._topics = topics
        self._log = LogThrottle(log)  # lines about what peers send: at most one per peer and reason

    def own_record(self) -> PeerRecord:
        relays: tuple[str, ...] = ()
        if self.private:
            relays = tuple(lk.peer_id for lk in self.links.open_links() if self.book.url(lk.peer_id))
        return PeerRecord.create(
            self.identity,
            self.url,
            self.location,
            private=self.private,
            relays=relays,
            tags=self.tags,
            x25519=self.x25519,
            topics=[] if WILDCARD in (own := self._topics()) else own,
        )

    async def send(self, peer_id: str) -> None:
        link = self.links.get(peer_id)
        if link is None:
            return
        records = [self.own_record()]
        fresh = sorted(self.records.records(), key=lambda r: r.seen, reverse=True)
        records += [r for r in fresh if r.peer_id != peer_id][: PEX_MAX_RECORDS - 1]
        legacy = not link.speaks(V1_1)  # a 1.0 node reads only the list form
        try:
            await link.send({"t": CtlKind.PEX.value, "records": [r.to_wire(legacy=legacy) for r in records]})
        except Exception as exc:
            log.debug("pex to %s failed: %s", peer_id, exc)

    async def loop(self) -> None:
        while True:
            await asyncio.sleep(PEX_INTERVAL_S)
            for link in self.links.open_links():
                if not link.browser:
                    await self.send(link.peer_id)

    def may_teach_peers(self, peer_id: str) -> bool:
        """Believed from a pre-trusted (bootstrap) peer, one the operator trusts, or one whose score
        reaches --pex-min-trust times an even share; a fresh stranger scores nothing."""
        if peer_id in self.trust.cache.pretrusted or self.trust.opinions.get(peer_id, 0.0) > 0:
            return True
        if self.pex_min_trust <= 0:
            return True
        scores = self.trust.cache.scores()
        score = scores.get(peer_id, 0.0)
        return score > 0 and score * len(scores) >= self.pex_min_trust

    def refuse(self, peer_id: str, reason: str, detail: str) -> None:
        """A dropped ctl message: a log line and an audit row, at most one per peer, reason and interval."""
        if self._log.info((peer_id, reason), "dropped %s from %s: %s", reason, peer_id, detail):
            row = {
                "at": time.time(),
                "event": "rejected",
                "message_id": None,
                "peer_id": peer_id,
                "reason": reason,
            }
            self.tasks.spawn(self.store.commit_gossip([], [row]), name="pex-audit")

    def on_ctl(self, peer_id: str, message: dict[str, Any]) -> None:
        """The ``pex`` ctl handler: at most PEX_MAX_RECORDS verified records from a peer trusted enough."""
        records = message.get("records")
        if not isinstance(records, list) or len(records) > PEX_MAX_RECORDS:
            self.refuse(peer_id, "pex_malformed", f"not a list of at most {PEX_MAX_RECORDS} records")
            self._violated(peer_id, "pex")
            return
        if not self.may_teach_peers(peer_id):
            self.refuse(peer_id, "pex_untrusted", "its trust is below --pex-min-trust")
            return
        learned = 0
        for raw in records:
            try:
                record = PeerRecord.from_wire(raw)
            except ValueError as exc:
                self.refuse(peer_id, "pex_record", str(exc))
                continue
            if record.peer_id == self.identity.peer_id or self.book.blocked(record.peer_id):
                continue
            if not url_allowed(self.policy, record.url):
                self.refuse(peer_id, "pex_address", f"a record's URL {record.url[:80]!r} is not dialled")
                continue
            known = self.records.get(record.peer_id)
            if not self.records.add(record, peer_id):
                continue
            self.membership.record(known, record)
            self.book.learned(record.peer_id, record.url, seen=record.seen)
            self.book.mark_private(record.peer_id, record.private, record.relays)
            if record.version > 1:
                self.book.note_keys(record.peer_id, record.tags, record.x25519, record.topics)
            learned += 1
        if learned:
            self._wake()

    async def add_peer(self, url: str) -> dict[str, Any]:
        """Learn a peer from its URL's /healthz; its row, pinned (the operator's choice, never collected)."""
        url = await self.policy.check_url(url)
        health = await self.client.healthz(url)
        peer_id = health["peer_id"]
        if not is_peer_id(peer_id):
            raise PeerError(f"{url}/healthz returned an invalid peer_id")
        if peer_id == self.identity.peer_id:
            raise PeerError(f"{url} is this node itself", code="self_dial", status=409)
        self.book.learned(peer_id, url)
        if health.get("private") is True:  # its /offer says 403: dial it through the mesh
            self.book.mark_private(peer_id, True, ())
        self.book.mark(peer_id, pinned=True)
        return await self.store.upsert_peer(peer_id, url=url, last_seen=time.time())

    async def bootstrap(self, urls: list[str], set_trust: Callable[[str, float], Awaitable[None]]) -> None:
        """Learn the bootstrap peers, pre-trusted; retried with backoff until each answered once."""
        pending = list(urls)
        delay = 1.0
        while pending:
            for url in list(pending):
                try:
                    peer = await self.add_peer(url)
                    self.trust.add_pretrusted(peer["peer_id"])
                    if peer["peer_id"] not in self.trust.opinions:
                        await set_trust(peer["peer_id"], BOOTSTRAP_OPINION)
                    pending.remove(url)
                except Exception as exc:
                    log.info("bootstrap %s not reachable yet: %s", url, getattr(exc, "detail", exc))
            self._wake()
            if pending:
                await asyncio.sleep(delay)
                delay = min(delay * 2, BOOTSTRAP_MAX_DELAY_S)
