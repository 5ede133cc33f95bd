"""Node: one peer, composed of its parts. Builds them, orders start and stop, and is the facade the
API and the CLI use; what each part does lives in its own module (see docs/architecture.md)."""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

from f0mesh import __version__
from f0mesh.address_policy import AddressPolicy
from f0mesh.bindings import LinkGossipTransport, SqlGossipStore, gossip_ctl, message_event, stored_messages
from f0mesh.config import NodeConfig
from f0mesh.ctl import CtlKind, CtlRouter
from f0mesh.errors import F0MeshError, StoreUnavailableError
from f0mesh.events import EventBus
from f0mesh.gossip import GossipEngine, StoredMessage
from f0mesh.heap import TrimAfterBurst, limit_arenas
from f0mesh.identity import Identity
from f0mesh.link_events import Bound, LinkEvents, LinkValue, build_links
from f0mesh.membership import Membership
from f0mesh.mesh_signaling import MeshSignaling
from f0mesh.messaging import Messaging
from f0mesh.metrics import NodeMetrics
from f0mesh.offenders import Offenders
from f0mesh.peer_book import PeerBook, held_elsewhere
from f0mesh.peer_exchange import PeerExchange
from f0mesh.peer_store import PeerStore
from f0mesh.qos.sampler import QoSSampler, Sample
from f0mesh.retention import Retention
from f0mesh.rtc.connection_manager import ConnectionManager
from f0mesh.rtc.link import Link
from f0mesh.rtc.signaling_client import SignalingClient, outbound_tls_context
from f0mesh.state import STATE_TOPICS, ReplicatedState, StateParams
from f0mesh.state_sync_limit import StateSyncLimit
from f0mesh.store import Store
from f0mesh.tasks import TaskSet
from f0mesh.telemetry import TELEMETRY_TOPIC, Telemetry
from f0mesh.topics import Topics
from f0mesh.trust import TrustService
from f0mesh.trust_keeper import TRUST_TOPIC, TrustKeeper, record_violation
from f0mesh.wire import V1_1

log = logging.getLogger("f0mesh.node")

RESERVED_TOPICS = frozenset({TELEMETRY_TOPIC, TRUST_TOPIC, *STATE_TOPICS})
STOP_TIMEOUT_S = 5.0


class Node:
    def __init__(self, config: NodeConfig) -> None:
        limit_arenas()  # before the store's and the executor's threads exist (f0mesh.heap)
        self.config = config
        self.identity = Identity.load_or_create(config.data_dir)
        self.peer_id = self.identity.peer_id
        self.admin_token = config.load_admin_token()
        self.url, self.private = config.advertised_url, config.no_public_url
        self.policy = AddressPolicy(config.dial_allow)
        self.metrics = NodeMetrics(self.peer_id)
        self.events = EventBus()
        self.membership = Membership(self.events)
        self.ctl = CtlRouter()  # parts, applications and benchmarks register their ctl kinds here
        self.tasks = TaskSet("node", log)  # background work of the node and its parts
        self.started_at = time.time()
        self._started = False

    async def start(self) -> None:
        config, tasks = self.config, self.tasks
        self.store = store = await Store.open(config.resolved_store_url, self.peer_id)
        try:
            await store.close_stale_links("node restarted")
        except StoreUnavailableError as exc:  # a full disk must not keep the node down; the rows wait
            log.warning("links of the previous run not marked closed: %s", exc.detail)
        self.trust = TrustService(self.peer_id, params=config.trust)
        await TrustKeeper.load(self.trust, store)
        violated = functools.partial(record_violation, self.trust)  # a peer broke a protocol below gossip
        kept = functools.partial(held_elsewhere, parts=lambda: (self.records, self.trust, self.state))
        self.book = PeerBook(self.peer_id, store, tasks, self.membership, kept=kept)
        await self.book.load()
        self.records = PeerStore(
            config.peer_store_max, scores=self.trust.cache.scores, on_evict=self.book.evicted
        )
        self.client = SignalingClient(self.policy, verify=outbound_tls_context(config.tls_ca))
        self.link_events = glue = LinkEvents(
            store, self.book, self.metrics, self.events, self.membership, self.ctl, tasks
        )
        links, self.resources = build_links(config, self.identity, self.policy, self.client, glue, violated)
        self.links = links
        self.qos = QoSSampler(
            interval=config.qos_interval, probe_rate=config.probe_rate, on_sample=glue.store_samples,
            on_health_change=glue.health_changed,
        )  # fmt: skip
        self.gossip = gossip = GossipEngine(
            self.identity, LinkGossipTransport(links), SqlGossipStore(store), params=config.gossip,
            scores_provider=self.trust.scores, origin_limiter=self.trust.origin_limiter,
            neighbour_limiter=self.trust.neighbour_limiter, feedback=self.trust.record,
            blocked=self.book.blocked, may_publish=lambda topic, peer: self.state.may_publish(topic, peer),
            topics=config.topics, always_subscribed=RESERVED_TOPICS,
            on_offender=lambda peer: self.offenders.eject(peer),  # built with the connection manager
        )  # fmt: skip
        self.topics = Topics(gossip, self.trust.cache.scores, lambda: self.state)  # views for the API
        self.keeper = TrustKeeper(self.trust, store, gossip, linked=lambda: bool(links.open_links()))
        self.telemetry = Telemetry(config, gossip, links, self.qos, tasks, scores=self.trust.cache.scores)
        gossip.subscribe(None, self._message_event)
        self.metrics.watch_gossip(gossip, self.peer_id)
        self.metrics.watch_links(links.open_links)
        await gossip.start()
        self.connmgr = ConnectionManager(
            links, config.degree, candidates=self.book.dial_candidates,
            link_value=LinkValue(self.trust.cache.scores, self.qos.latest),
            heard=self.telemetry.heard_recently,
        )  # fmt: skip
        self.offenders = Offenders(links, self.connmgr, tasks, gossip.score, blocked=self.book.blocked)
        self.pex = PeerExchange(
            self.identity, config, self.book, self.records, self.trust, links, self.membership, self.policy,
            self.client, store, tasks, wake=self.connmgr.wake, violated=violated,
            topics=lambda: gossip.subscriptions.own,
        )  # fmt: skip
        self.messaging = Messaging(
            self.identity, config, self.book, links, self.events, tasks, telemetry=self.telemetry.received,
            send=glue.send, refuse=self.pex.refuse, violated=violated,
        )  # fmt: skip
        self.direct, self.queries = self.messaging.direct, self.messaging.queries
        self.signaling = MeshSignaling(
            config, self.peer_id, links, self.book, self.client, self.metrics, tasks,
            telemetry=self.telemetry.received, violated=violated,
        )  # fmt: skip
        self.state = ReplicatedState(
            self.peer_id, store, gossip, send=glue.send, speaks=functools.partial(links.speaks, version=V1_1),
            neighbours=links.node_peers, is_page=links.is_browser, own_record=self.pex.own_record,
            sign=self.identity.sign, on_peer=self.book.from_registry, on_violation=violated,
            audit=self.pex.refuse, writers=config.state_writers,
            params=StateParams(peer_refresh_s=config.peer_refresh_s),
        )  # fmt: skip
        self.trim = TrimAfterBurst(tasks)
        self.retention = Retention(config, store, links, self.book)
        self.ctl.register(CtlKind.GOSSIP, gossip_ctl(gossip, links, RESERVED_TOPICS, self.pex.refuse))
        self.ctl.register(CtlKind.PEX, self.pex.on_ctl)
        self.ctl.register(CtlKind.STATE, StateSyncLimit(self.state.on_ctl, self.pex.refuse))
        self.ctl.register(CtlKind.SIG, self.signaling.on_ctl)
        self.ctl.register(CtlKind.DIRECT, self.direct.on_frame)
        parts = (links, self.qos, gossip, self.state, self.connmgr, self.pex, self.telemetry, self.signaling)
        glue.bind(Bound(*parts, self.trim))
        await self.state.start()
        self._started = True
        self.qos.start()
        self.connmgr.start()
        tasks.spawn(self.pex.bootstrap(list(config.bootstrap), self.keeper.set_trust), name="bootstrap")
        tasks.spawn(self.pex.loop(), name="pex")
        tasks.spawn(self.retention.prune_loop(), name="retention")
        tasks.spawn(self.keeper.loop(), name="trust")
        tasks.spawn(self.telemetry.loop(), name="telemetry")
        tasks.spawn(self.retention.gc_loop(), name="gc")
        log.info("node %s started at %s", self.peer_id, self.url)

    async def __aenter__(self) -> Node:
        """``async with Node(NodeConfig(...)) as node:`` — a full peer inside an asyncio app."""
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def stop(self) -> None:
        if not self._started:
            return
        self._started = False
        self.link_events.unbind()  # links that end from here on are not news to the other parts
        self.telemetry.close()
        self.trim.close()
        await self.state.stop()  # announces the leave while the links are still up
        await self.connmgr.stop()
        await self.qos.stop()
        await self.tasks.close(STOP_TIMEOUT_S, grace=0)
        await self.links.stop()
        await self.link_events.close()
        await self.gossip.stop()
        await self.keeper.save()
        await self.book.close()
        await self.client.close()
        await self.store.close()
        log.info("node %s stopped", self.peer_id)

    def _message_event(self, message: StoredMessage) -> None:
        if self.events.listening:
            self.events.publish("message", message_event(message))

    # -- the facade: operations used by the API and the CLI ---------------------------------

    def health(self) -> dict[str, Any]:
        return {
            "status": "ok", "peer_id": self.peer_id, "private": self.private, "name": self.config.name,
            "links": len(self.links.open_links()), "version": __version__, "url": self.url,
            "storage": self.store.storage,  # "full" or "unavailable" while writes are refused (507/503)
        }  # fmt: skip

    async def publish(self, topic: str, payload: Any) -> str:
        _not_reserved(topic)
        return await self.gossip.publish(topic, payload)

    async def publish_many(self, topic: str, payloads: Sequence[Any]) -> list[str]:
        """Several payloads of one topic, each its own signed envelope, committed together."""
        _not_reserved(topic)
        return await self.gossip.publish_many(topic, payloads)

    def linked_peers(self) -> set[str]:
        return {link.peer_id for link in self.links.open_links()}

    async def add_peer(self, url: str) -> dict[str, Any]:
        """Learn a peer from its URL's /healthz; returns its mesh_peers row."""
        return await self.pex.add_peer(url)

    async def list_peers(self, limit: int) -> list[dict[str, Any]]:
        await self.book.flush()
        return await self.store.list_peers(limit=limit)

    async def set_blocked(self, peer_id: str, blocked: bool) -> None:
        """A blocked peer is refused on every path: offers, dials, peer exchange, its open link."""
        await self.book.set_blocked(peer_id, blocked)
        if blocked:
            self.connmgr.hold(peer_id)
            await self.links.close_link(peer_id, "blocked by operator")
        else:
            self.connmgr.release(peer_id)
            self.links.release(peer_id)

    async def dial(self, *, url: str | None = None, peer_id: str | None = None) -> Link:
        link = await (self.links.dial_url(url) if url is not None else self.links.dial(str(peer_id)))
        self.connmgr.release(link.peer_id)
        return link

    async def close_link(self, peer_id: str) -> bool:
        self.connmgr.hold(peer_id)
        return await self.links.close_link(peer_id)

    def link_samples(self) -> list[tuple[Link, Sample | None]]:
        """Every link this node holds, with its latest QoS sample (None until measured)."""
        return [(link, self.qos.latest.get(link.link_id)) for link in self.links.links()]

    async def messages(self, *, topic: str | None, limit: int, since: int | None) -> list[dict[str, Any]]:
        return await self.store.list_messages(topic=topic, limit=limit, since=since)

    async def audit(self, *, limit: int, event: str | None) -> list[dict[str, Any]]:
        return await self.store.list_audit(limit=limit, event_name=event)

    def subscribe(self, topic: str, since: int | None = None) -> AsyncIterator[dict[str, Any]]:
        """Every message of ``topic`` stored from now on (after ``since``), in order; joins it if new."""
        return stored_messages(self.store, self.gossip, topic, since)

    async def query(self, name: str, payload: Any = None, **where: Any) -> dict[str, Any]:
        """Ask the peers matching ``peers``/``tags`` (default: all with a key) until ``timeout``."""
        return await self.messaging.query(name, payload, **where)

    async def samples(self, **query: Any) -> list[dict[str, Any]]:
        """QoS history (link_samples): by ``peer_id``, ``link_id``, ``since``, ``limit``."""
        return await self.store.list_samples(**query)


def _not_reserved(topic: str) -> None:
    if topic in RESERVED_TOPICS:
        raise F0MeshError(f"topic {topic!r} is reserved for the node itself", code="reserved_topic")
