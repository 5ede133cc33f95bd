"""Node: one peer, composed of its parts. The API and the CLI talk to this object only."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import math
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any

import msgpack

from f0mesh import __version__, heap
from f0mesh.address_policy import AddressPolicy
from f0mesh.bindings import GOSSIP_FRAME, LinkGossipTransport, SqlGossipStore
from f0mesh.config import NodeConfig, valid_name
from f0mesh.direct import FRAME as DIRECT_FRAME
from f0mesh.direct import DirectDropped, DirectService, Received
from f0mesh.errors import F0MeshError, PeerError, PolicyError, StoreUnavailableError
from f0mesh.events import EventBus
from f0mesh.gossip import GossipEngine, StoredMessage
from f0mesh.identity import Identity, is_peer_id
from f0mesh.latest_writer import LatestWriter
from f0mesh.log_throttle import LogThrottle
from f0mesh.membership import Membership
from f0mesh.metrics import NodeMetrics
from f0mesh.peer_record import PeerRecord
from f0mesh.peer_store import PeerStore, url_allowed
from f0mesh.qos.sampler import QoSSampler, Sample
from f0mesh.query import Queries
from f0mesh.rtc.connection_manager import ConnectionManager, DegreeParams
from f0mesh.rtc.dial_gate import DialGate
from f0mesh.rtc.ice import path_kind
from f0mesh.rtc.link import Link, LinkSettings, LinkState
from f0mesh.rtc.link_manager import LinkManager
from f0mesh.rtc.relay import SIG_FRAME, RelayRefused, SignalRelay, offer_nonce, parse, refusal
from f0mesh.rtc.resources import ResourceLimits
from f0mesh.rtc.signaling_client import SignalingClient, outbound_tls_context
from f0mesh.state import STATE_FRAME, PeerInfo, ReplicatedState
from f0mesh.state.peers import PEERS_DOC
from f0mesh.store import Store
from f0mesh.trust import Event, TrustService

log = logging.getLogger("f0mesh.node")

PEX_INTERVAL_S = 30.0
PEX_MAX_RECORDS = 64
TELEMETRY_TOPIC = "telemetry"
TRUST_TOPIC = "trust"
RESERVED_TOPICS = frozenset({TELEMETRY_TOPIC, TRUST_TOPIC, "state"})
TRUST_REFRESH_S = 5.0
# scores in mesh_peers are for operators and the API; the live ones sit in memory (TrustService)
TRUST_SCORES_SAVE_S = 30.0
# Link changes come in bursts (a mesh forming, a neighbour pruning); one telemetry summary per burst,
# and at most one every this many seconds, or link churn becomes most of the mesh's gossip.
TELEMETRY_MIN_GAP_S = 10.0
HEAP_TRIM_AFTER_S = 1.0
TRUST_STATE = "_trust"
PEER_FLUSH_S = 1.0
# mesh_peers.last_seen is for operators ("seen a minute ago"); every peer exchange and registry delta
# re-reports every peer, and writing each report made peer rows most of a quiet node's store writes.
PEER_SEEN_RESOLUTION_S = 30.0
LINK_ROWS_CLOSE_S = 5.0
# The node's own opinion of a --bootstrap peer, unless its operator set one: the operator chose that
# peer as its entry to the mesh, which is why it is also pre-trusted. Without an opinion, the node's
# own edges come from behaviour alone, and a Sybil that relays its group's messages earns as heavy an
# edge as the bootstrap peer, handing the group as much of this node's trust.
BOOTSTRAP_OPINION = 1.0
# A dial through the mesh tries the relays a peer names (or that list it among their links) first,
# then other neighbours; each refuses quickly when it has no link to the peer.
MESH_RELAY_TRIES = 4
MESH_OFFERS_ANSWERING = 8
RELAY_SEND_TIMEOUT_S = 5.0
SUBSCRIBE_PAGE = 100


class Node:
    def __init__(self, config: NodeConfig) -> None:
        self.config = config
        self.identity = Identity.load_or_create(config.data_dir)
        self.peer_id = self.identity.peer_id
        self.admin_token = config.load_admin_token()
        self.url = config.advertised_url
        self.private = config.no_public_url
        self.relay = SignalRelay()
        self._mesh_answering = 0
        self.policy = AddressPolicy(config.dial_allow)
        self.metrics = NodeMetrics(self.peer_id)
        self.events = EventBus()
        self.membership = Membership(self.events)
        self.telemetry: dict[str, dict[str, Any]] = {}
        self._heard: dict[str, float] = {}
        self._dirty_peers: set[str] = set()
        self._peers_written: dict[str, tuple[str | None, float]] = {}
        self._peers_flush: asyncio.TimerHandle | None = None
        self._telemetry_due: asyncio.TimerHandle | None = None
        self._trim_due: asyncio.TimerHandle | None = None
        self._telemetry_at = -TELEMETRY_MIN_GAP_S
        self.started_at = time.time()
        self.store: Store
        self.client: SignalingClient
        self.links: LinkManager
        self._peers: dict[str, dict[str, Any]] = {}
        self._forgotten: set[str] = set()  # strangers collected, their mesh_peers rows still to delete
        self._tasks: set[asyncio.Task[Any]] = set()
        # one writer, latest state per link: a slow "open" write must not land after the "closed" one
        self._link_rows: LatestWriter[str, dict[str, Any]] = LatestWriter(
            lambda row: self.store.upsert_link(row), what="mesh_links"
        )
        self._log = LogThrottle(log)  # lines about what peers send: at most one per peer and reason
        self._started = False
        # -- direct messages and queries (f0mesh/direct.py, f0mesh/query.py) --
        self.direct = DirectService(
            self.identity,
            neighbours=self._direct_neighbours,
            send=self._send_ctl,
            key_of=lambda pid: self._peers.get(pid, {}).get("x25519"),
            dropped=self._direct_dropped,
            toward=self._linked_to,
            blocked=self.peer_blocked,
        )
        self.direct.handler("msg", self._direct_delivered)
        self.queries = Queries(
            self.direct, self_info=lambda: {"peer_id": self.peer_id, "tags": self.config.tags}
        )

    async def start(self) -> None:
        self.store = await Store.open(self.config.resolved_store_url, self.peer_id)
        try:
            await self.store.close_stale_links("node restarted")
        except StoreUnavailableError as exc:  # a full disk must not keep the node down; the rows wait
            log.warning("links of the previous run not marked closed: %s", exc.detail)
        for row in await self.store.list_peers(limit=10000):
            self._peers[row["peer_id"]] = row
        self.client = SignalingClient(self.policy, verify=outbound_tls_context(self.config.tls_ca))
        max_message = LinkSettings.max_message_size
        self.resources = ResourceLimits(
            max_links=self.config.max_links,
            max_pending_offers=self.config.max_pending_offers,
            reassembly_total_bytes=self.config.reassembly_total_bytes,
            reassembly_per_peer_bytes=2 * max_message,
        )
        self.links = LinkManager(
            self.identity,
            local_url=None if self.private else self.url,
            settings=LinkSettings(
                ice_servers=self.config.ice_servers,
                relay_only=self.config.ice_relay_only,
                heartbeat_interval=self.config.heartbeat_interval,
                heartbeat_timeout=self.config.heartbeat_timeout,
                connect_timeout=self.config.connect_timeout,
                on_violation=self.peer_violated,
                memory=self.resources.memory,
            ),
            policy=self.policy,
            client=self.client,
            delegate=self,
            max_links=self.resources.max_links,
            max_pending_offers=self.resources.max_pending_offers,
            gate=DialGate(self.config.dial_rate, self.config.dial_burst),
        )
        self.connmgr = ConnectionManager(
            self.links,
            DegreeParams(d_lo=self.config.d_lo, d_target=self.config.d_target, d_hi=self.config.d_hi),
            candidates=self._dial_candidates,
            link_value=self._link_value,
            heard=self._heard_recently,
        )
        self.qos = QoSSampler(
            interval=self.config.qos_interval,
            probe_rate=self.config.probe_rate,
            on_sample=self._store_samples,
            on_health_change=self._health_changed,
        )
        self.trust = TrustService(self.peer_id)
        self._records = PeerStore(
            self.config.peer_store_max, scores=self.trust.cache.scores, on_evict=self._evicted
        )
        saved = await self.store.get_state(TRUST_STATE)
        if saved is not None:
            self.trust.load(msgpack.unpackb(saved[1]))
        self.gossip = GossipEngine(
            self.identity,
            LinkGossipTransport(self.links),
            SqlGossipStore(self.store),
            params=self.config.gossip,
            scores_provider=self.trust.scores,
            origin_limiter=self.trust.origin_limiter,
            neighbour_limiter=self.trust.neighbour_limiter,
            feedback=self.trust.record,
            blocked=self.peer_blocked,
        )
        self.gossip.subscribe(None, self._on_delivered)
        self.metrics.watch_gossip(self.gossip, self.peer_id)
        self.metrics.watch_links(self.links.open_links)
        await self.gossip.start()
        self.state = ReplicatedState(
            self.peer_id,
            self.store,
            self.gossip,
            send=self._send_ctl,
            neighbours=lambda: [link.peer_id for link in self.links.open_links()],
            own_record=self.own_record,
            on_peer=self._peer_from_state,
            on_violation=self.peer_violated,
        )
        await self.state.start()
        self._started = True
        self.qos.start()
        self.connmgr.start()
        self._spawn(self._bootstrap())
        self._spawn(self._pex_loop())
        self._spawn(self._retention_loop())
        self._spawn(self._trust_loop())
        self._spawn(self._telemetry_loop())
        self._spawn(self._gc_loop())
        log.info("node %s started at %s", self.peer_id, self.url)

    async def __aenter__(self) -> Node:
        """``async with Node(NodeConfig(...)) as node:`` — a full peer inside an asyncio app."""
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def subscribe(self, topic: str, since: int | None = None) -> AsyncIterator[dict[str, Any]]:
        """Every message of ``topic`` stored from now on (after id ``since`` if given), in storing order,
        as /api/gossip/messages rows (``n``, ``id``, ``origin``, ``payload``: a JSON value or bytes).

        It reads the store, woken by each commit: a slow consumer holds one page, never a queue."""
        wake = asyncio.Event()
        unsubscribe = self.gossip.subscribe(topic, lambda _message: wake.set())
        try:
            last = since if since is not None else await self.store.last_message_n()
            while True:
                wake.clear()
                rows = await self.store.list_messages(topic=topic, since=last, limit=SUBSCRIBE_PAGE)
                for row in rows:
                    yield row
                if rows:
                    last = rows[-1]["n"]
                else:
                    await wake.wait()
        finally:
            unsubscribe()

    async def stop(self) -> None:
        if not self._started:
            return
        self._started = False
        await self.state.stop()  # announces the leave while the links are still up
        await self.connmgr.stop()
        await self.qos.stop()
        if self._telemetry_due:
            self._telemetry_due.cancel()
        if self._trim_due:
            self._trim_due.cancel()
        if self._peers_flush:
            self._peers_flush.cancel()
            self._peers_flush = None
        for task in self._tasks:
            task.cancel()
        await self.queries.close()
        await self.links.stop()
        await self._link_rows.close(LINK_ROWS_CLOSE_S)
        await self.gossip.stop()
        await self._save_trust()
        await self._flush_peers()
        await self.client.close()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=5)
        for task in self._tasks:
            task.cancel()
        await self.store.close()
        log.info("node %s stopped", self.peer_id)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("background task failed: %r", task.exception())

    # -- LinkDelegate ----------------------------------------------------------------------

    def link_state_changed(self, link: Link) -> None:
        self.metrics.link_state(link)
        row = link.describe()
        self._link_rows.put(link.link_id, row)
        self.events.publish("link", {k: row[k] for k in ("link_id", "peer_id", "state", "reason")})
        if link.state is LinkState.OPEN:
            self.qos.add(link)
            self.peer_learned(link.peer_id, None)
            self._peers[link.peer_id]["linked"] = True
            self.membership.opened(link.peer_id)
            self._spawn(self._send_pex(link))
            self._spawn(self.gossip.on_neighbour_up(link.peer_id))
            self.state.on_link_open(link.peer_id)
            self._schedule_telemetry()
        elif link.state in (LinkState.FAILED, LinkState.CLOSED) and self._started:
            self.qos.remove(link.link_id)
            if self.links.get(link.peer_id) in (None, link):
                self.metrics.link_gone(link.peer_id)
                self._spawn(self.gossip.on_neighbour_down(link.peer_id))
                self.membership.ended(link.peer_id, failed=link.state is LinkState.FAILED, reason=link.reason)
            self.connmgr.link_closed(link)
            self._schedule_telemetry()

    async def link_message(self, link: Link, message: dict[str, Any]) -> None:
        kind = message["t"]
        if self.peer_blocked(link.peer_id):
            return
        if kind == GOSSIP_FRAME and isinstance(message.get("m"), dict):
            await self.gossip.on_message(link.peer_id, message["m"])
        elif kind == "pex":
            self._on_pex(link, message)
        elif kind == STATE_FRAME:
            await self.state.on_ctl(link.peer_id, message)
        elif kind == SIG_FRAME:
            await self._on_sig(link, message)
        elif kind == DIRECT_FRAME:
            await self.direct.on_frame(link.peer_id, message)
        else:
            self._log.info(
                (link.peer_id, "unknown"),
                "dropped an unknown ctl message %r from %s",
                str(kind)[:32],
                link.peer_id,
            )

    # -- signaling through the mesh ------------------------------------------------------------

    async def _on_sig(self, link: Link, message: dict[str, Any]) -> None:
        """A relayed offer, answer or refusal: for this node, or to forward to a linked peer."""
        try:
            to, sender = parse(message)
            if to == self.peer_id:
                self._deliver_sig(link, sender, message)
                return
            target = self.links.get(to)
            target_open = target is not None and target.state is LinkState.OPEN
            desc = message.get("desc")
            if isinstance(desc, dict) and desc.get("type") == "offer":
                self.relay.offer(link.peer_id, to, message, target_open)
            else:
                self.relay.reply(link.peer_id, to, message)
                if not target_open:
                    raise RelayRefused(f"this relay has no open link to {to}", code="no_route")
            assert target is not None
            await asyncio.wait_for(target.send(message), RELAY_SEND_TIMEOUT_S)
        except F0MeshError as exc:
            self._sig_refused(link, message, exc)
        except (TimeoutError, ConnectionError) as exc:
            self._sig_refused(link, message, RelayRefused(f"forwarding failed: {type(exc).__name__}"))

    def _sig_refused(self, link: Link, message: dict[str, Any], exc: F0MeshError) -> None:
        self.relay.refused(exc.code)
        self.metrics.relay_refused.labels(reason=exc.code).inc()
        self._log.info(
            (link.peer_id, f"sig-{exc.code}"),
            "refused relayed signaling from %s: %s: %s",
            link.peer_id,
            exc.code,
            exc.detail,
        )
        if exc.code in ("malformed", "forged_source", "bad_signature", "wrong_target", "replay"):
            self.peer_violated(link.peer_id, "sig")
        nonce = offer_nonce(message)
        if nonce is not None and message.get("from") == link.peer_id and "desc" in message:
            self._spawn(
                self._send_quietly(link, refusal(link.peer_id, self.peer_id, nonce, exc.code, exc.detail))
            )

    async def _send_quietly(self, link: Link, message: dict[str, Any]) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(link.send(message), RELAY_SEND_TIMEOUT_S)

    def _deliver_sig(self, link: Link, sender: str, message: dict[str, Any]) -> None:
        desc = message.get("desc")
        if isinstance(desc, dict) and desc.get("type") == "offer":
            if desc.get("from") != sender:
                raise RelayRefused("the offer's signer is not the envelope's sender", code="forged_source")
            self.relay.admit(link.peer_id)
            if self._mesh_answering >= MESH_OFFERS_ANSWERING:
                raise RelayRefused("this node is answering too many relayed offers", code="rate_limited")
            self._mesh_answering += 1
            self._spawn(self._answer_mesh_offer(link, sender, desc))
        elif not self.links.mesh_reply(link.peer_id, message):
            raise RelayRefused("no relayed offer of this node waits for that reply", code="unsolicited")

    async def _answer_mesh_offer(self, link: Link, sender: str, desc: dict[str, Any]) -> None:
        try:
            answer = await self.links.handle_mesh_offer(desc)
            reply = {"t": SIG_FRAME, "to": sender, "from": self.peer_id, "desc": answer}
        except F0MeshError as exc:
            self.relay.refused(exc.code)
            self._log.info(
                (sender, f"mesh-offer-{exc.code}"), "refused a relayed offer from %s: %s", sender, exc.detail
            )
            reply = refusal(sender, self.peer_id, str(desc.get("nonce", ""))[:64], exc.code, exc.detail)
        finally:
            self._mesh_answering -= 1
        await self._send_quietly(link, reply)

    def mesh_relays(self, peer_id: str) -> list[str]:
        """Neighbours to try as relays to ``peer_id``: those it names or that list it as linked, first."""
        named = set(self._peers.get(peer_id, {}).get("relays") or ())
        for origin, summary in list(self.telemetry.items())[:1024]:
            links = summary.get("links")
            if isinstance(links, list) and any(
                isinstance(lk, dict) and lk.get("peer_id") == peer_id for lk in links[:256]
            ):
                named.add(origin)
        neighbours = [lk.peer_id for lk in self.links.open_links() if lk.peer_id != peer_id]
        ordered = [p for p in neighbours if p in named] + [p for p in neighbours if p not in named]
        return ordered[:MESH_RELAY_TRIES]

    def refuse_http_offers(self) -> None:
        """A private node takes offers only through the mesh."""
        if self.private:
            raise PolicyError(
                "this node is private (--no-public-url): it takes offers only through the mesh",
                code="private_node",
            )

    def peer_violated(self, peer_id: str, what: str) -> None:
        """A peer broke a protocol below gossip (framing, ctl, state): its behaviour score pays."""
        self.trust.record(peer_id, Event.REPLAY if what == "clock_skew" else Event.MALFORMED)

    def link_probe(self, link: Link, data: bytes) -> None:
        self.qos.on_probe(link, data)

    async def _store_samples(self, samples: list[Sample]) -> None:
        current = []
        for s in samples:
            figures = {
                "rtt_ms": s.rtt_ms,
                "jitter_ms": s.jitter_ms,
                "loss_pct": s.loss_pct,
                "bitrate_kbps": s.bitrate_kbps,
            }
            self.metrics.link_sample(s.peer_id, figures, s.health)
            current.append({"link_id": s.link_id, "peer_id": s.peer_id, "health": s.health, **figures})
            self.events.publish(
                "qos",
                {
                    "link_id": s.link_id,
                    "peer_id": s.peer_id,
                    "health": s.health,
                    "updated_at": s.at,
                    **figures,
                },
            )
        await self.store.add_samples([s.row() for s in samples], current)

    def _health_changed(self, link: Any, old: str, new: str) -> None:
        log.info("link %s to %s: health %s -> %s", link.link_id, link.peer_id, old, new)
        if "bad" in (old, new):  # news for the topology; good <-> fair flapping waits for the next summary
            self._schedule_telemetry()

    # -- gossip, telemetry and trust --------------------------------------------------------

    async def publish(self, topic: str, payload: Any) -> str:
        if topic in RESERVED_TOPICS:
            raise F0MeshError(f"topic {topic!r} is reserved for the node itself", code="reserved_topic")
        return await self.gossip.publish(topic, payload)

    def _heard_recently(self) -> set[str]:
        """Origins whose gossip arrived within two telemetry periods: the island this node is in."""
        horizon = time.time() - 2 * self.config.gossip_interval - 10
        return {peer for peer, at in self._heard.items() if at >= horizon}

    def _on_delivered(self, message: StoredMessage) -> None:
        self._heard[message.origin] = message.received_at
        if message.topic == TELEMETRY_TOPIC and isinstance(message.payload, dict):
            self.telemetry[message.origin] = {**message.payload, "received_at": message.received_at}
        elif message.topic == TRUST_TOPIC and message.origin != self.peer_id:
            self.trust.apply_published(message.origin, message.payload)
        self.events.publish(
            "message",
            {
                "id": message.id,
                "origin": message.origin,
                "topic": message.topic,
                "hops": message.hops,
                **(
                    {"payload_b64": base64.b64encode(message.payload).decode("ascii")}
                    if isinstance(message.payload, bytes)
                    else {"payload": message.payload}
                ),
            },
        )

    def _schedule_trim(self) -> None:
        """HEAP_TRIM_AFTER_S after the last link change of a burst, what the burst freed goes back
        to the OS (f0mesh.heap): otherwise glibc keeps the burst's high-water mark as RSS."""
        if self._trim_due is not None:
            self._trim_due.cancel()
        if self._started:
            loop = asyncio.get_running_loop()
            self._trim_due = loop.call_later(HEAP_TRIM_AFTER_S, self._trim_now)

    def _trim_now(self) -> None:
        self._trim_due = None
        self._spawn(asyncio.to_thread(heap.trim))  # ctypes lets go of the GIL: tens of ms off the loop

    def _schedule_telemetry(self) -> None:
        """One summary a second after a link change covers its burst (see TELEMETRY_MIN_GAP_S)."""
        self._schedule_trim()
        if self._telemetry_due is None and self._started:
            loop = asyncio.get_running_loop()
            delay = max(1.0, self._telemetry_at + TELEMETRY_MIN_GAP_S - loop.time())
            self._telemetry_due = loop.call_later(delay, self._telemetry_now)

    def _telemetry_now(self) -> None:
        self._telemetry_due = None
        self._spawn(self._publish_telemetry())

    def telemetry_summary(self) -> dict[str, Any]:
        links = []
        for view in self.link_views():
            if view["state"] == "open":
                links.append(
                    {
                        k: view[k]
                        for k in ("peer_id", "health", "rtt_ms", "jitter_ms", "loss_pct", "bitrate_kbps")
                    }
                )
        return {"url": self.url, "location": self.config.location, "name": self.config.name, "links": links}

    async def _publish_telemetry(self) -> None:
        try:
            self._telemetry_at = asyncio.get_running_loop().time()
            await self.gossip.publish(TELEMETRY_TOPIC, self.telemetry_summary())
        except Exception as exc:
            log.info("telemetry publish failed: %s", exc)

    async def _telemetry_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.gossip_interval)
            await self._publish_telemetry()

    async def _trust_loop(self) -> None:
        """Scores follow the graph; this node's opinions are published and saved when they changed enough."""
        unsaved, saved_at = False, -math.inf
        while True:
            await asyncio.sleep(TRUST_REFRESH_S)
            try:
                unsaved = self.trust.refresh() or unsaved
                if unsaved and time.monotonic() - saved_at >= TRUST_SCORES_SAVE_S:
                    await self.store.set_peer_trust(self.trust.scores())
                    unsaved, saved_at = False, time.monotonic()
                payload = self.trust.opinions_due() if self.links.open_links() else None
                if payload is not None:
                    await self.gossip.publish(TRUST_TOPIC, payload)
                    self.trust.mark_published(payload)
                    await self._save_trust()
            except F0MeshError as exc:  # e.g. the node is busy (429): the next round tries again
                log.info("trust opinions not published: %s", exc.detail)
            except Exception:
                log.exception("trust refresh failed")

    async def _save_trust(self) -> None:
        await self.store.put_state(TRUST_STATE, "trust", msgpack.packb(self.trust.to_dict()))

    async def set_trust(self, peer_id: str, weight: float) -> None:
        self.trust.set_opinion(peer_id, weight)
        await self._save_trust()
        await self.store.set_peer_trust(self.trust.scores())

    def peer_learned(self, peer_id: str, url: str | None, *, seen: float | None = None) -> None:
        self._forgotten.discard(peer_id)
        record = self._peers.setdefault(peer_id, {"peer_id": peer_id, "url": None, "blocked": False})
        if url:
            record["url"] = url
        record["last_seen"] = max(record.get("last_seen") or 0.0, seen or time.time())
        url_written, seen_written = self._peers_written.get(peer_id, (None, -math.inf))
        if url_written == record["url"] and record["last_seen"] - seen_written < PEER_SEEN_RESOLUTION_S:
            return
        self._dirty_peers.add(peer_id)
        if self._peers_flush is None and self._started:
            self._peers_flush = asyncio.get_running_loop().call_later(PEER_FLUSH_S, self._flush_peers_soon)

    def _flush_peers_soon(self) -> None:
        self._peers_flush = None
        self._spawn(self._flush_peers())

    async def _flush_peers(self) -> None:
        """Peer exchange and the registry learn many peers in bursts: one transaction per burst."""
        forgotten, self._forgotten = self._forgotten, set()
        if forgotten:
            await self.store.delete_peers(sorted(forgotten))
        dirty, self._dirty_peers = self._dirty_peers, set()
        rows = [
            {
                "peer_id": pid,
                "url": self._peers[pid].get("url"),
                "last_seen": self._peers[pid].get("last_seen"),
            }
            for pid in dirty
            if pid in self._peers
        ]
        if rows:
            await self.store.upsert_peers(rows)
            self._peers_written.update((r["peer_id"], (r["url"], r["last_seen"])) for r in rows)

    def _peer_from_state(self, info: PeerInfo) -> None:
        """mesh_peers mirrors the replicated registry; a peer that left cleanly is not dialled."""
        self.peer_learned(info.peer_id, info.url, seen=info.last_seen)
        self._peers[info.peer_id]["status"] = info.status
        self._mark_private(info.peer_id, info.private, info.relays)
        self._note_keys(info.peer_id, info.tags, info.x25519)

    def _mark_private(self, peer_id: str, private: bool, relays: tuple[str, ...]) -> None:
        """A private peer's URL is kept for operators but never dialled: its relays are the way in."""
        record = self._peers[peer_id]
        record["private"] = private
        record["relays"] = relays

    async def _send_ctl(self, peer_id: str, message: dict[str, Any]) -> None:
        link = self.links.get(peer_id)
        if link is None or link.state is not LinkState.OPEN:
            raise PeerError(f"no open link to {peer_id}")
        await link.send(message)

    def peer_url(self, peer_id: str) -> str | None:
        record = self._peers.get(peer_id)
        return record.get("url") if record and not record.get("private") else None

    def peer_blocked(self, peer_id: str) -> bool:
        record = self._peers.get(peer_id)
        return bool(record and record.get("blocked"))

    async def _gc_loop(self) -> None:
        """Strangers leave nothing: dead links, their rows and peers that never linked are collected."""
        while True:
            await asyncio.sleep(self.config.gc_interval_s)
            try:
                await self.collect_strangers()
            except Exception:
                log.exception("collecting dead links and strangers failed")

    async def collect_strangers(self) -> dict[str, int]:
        """One collection; what stays is bounded by --stranger-retention (time) and link_rows_max (rows)."""
        horizon = time.time() - self.config.stranger_retention_s
        links = self.links.collect(horizon)
        rows = await self.store.prune_links(ended_before=horizon, keep=self.config.link_rows_max)
        strangers = [pid for pid, rec in self._peers.items() if self._stranger(pid, rec, horizon)]
        for pid in strangers:
            self._forget_peer(pid)
        await self._flush_peers()
        removed = {"links": links, "link_rows": rows, "strangers": len(strangers)}
        if any(removed.values()):
            log.info("collected %s", removed)
        return removed

    def _stranger(self, peer_id: str, record: dict[str, Any], horizon: float) -> bool:
        """A peer this node holds nothing for, not heard of since ``horizon`` and not being dialled."""
        if (record.get("last_seen") or 0.0) >= horizon or self._kept(peer_id, record):
            return False
        link = self.links.get(peer_id)
        return link is None or not link.live

    def _kept(self, peer_id: str, record: dict[str, Any]) -> bool:
        """Linked once, kept by the operator, the trust layer, the peer store or the registry."""
        if record.get("linked") or record.get("blocked") or record.get("pinned"):
            return True
        if peer_id in self._records or peer_id in self.trust.opinions:
            return True
        if peer_id in self.trust.cache.pretrusted:
            return True
        registry = self.state.get(PEERS_DOC)
        return registry is not None and peer_id in registry.crdt

    def _forget_peer(self, peer_id: str) -> None:
        self._peers.pop(peer_id, None)
        self._peers_written.pop(peer_id, None)
        self._dirty_peers.discard(peer_id)
        self._forgotten.add(peer_id)

    def _evicted(self, peer_id: str) -> None:
        """The peer store made room: a peer known only from that record goes with it."""
        record = self._peers.get(peer_id)
        if record is not None and not self._kept(peer_id, record):
            self._forget_peer(peer_id)

    async def _retention_loop(self) -> None:
        """Old samples and audit rows are pruned hourly so the store stays bounded."""
        while True:
            now = time.time()
            try:
                removed = await self.store.prune(
                    samples_before=now - self.config.sample_retention_s,
                    audit_before=now - self.config.gossip_retention_s,
                    messages_before=now - self.config.gossip_retention_s,
                )
                if any(removed.values()):
                    log.info("retention pruned %s", removed)
            except Exception:
                log.exception("retention pruning failed")
            await asyncio.sleep(3600)

    # -- membership: bootstrap, peer exchange, degree ---------------------------------------

    def _dial_candidates(self) -> dict[str, str]:
        return {
            pid: rec["url"]
            for pid, rec in self._peers.items()
            if rec.get("url")
            and not rec.get("blocked")
            and not rec.get("private")
            and rec.get("status") != "left"
            and pid != self.peer_id
        }

    def _link_value(self, link: Link) -> float:
        """Pruning order: the lowest value goes first. Older links are worth a little more."""
        age = time.time() - (link.opened_at or time.time())
        return min(age, 600.0) / 600.0

    async def _bootstrap(self) -> None:
        """Learn the bootstrap peers; retried with backoff until each answered once."""
        pending = list(self.config.bootstrap)
        delay = 1.0
        while pending:
            for url in list(pending):
                try:
                    peer = await self.add_peer(url)
                    self.trust.add_pretrusted(peer["peer_id"])
                    if peer["peer_id"] not in self.trust.opinions:
                        await self.set_trust(peer["peer_id"], BOOTSTRAP_OPINION)
                    pending.remove(url)
                except Exception as exc:
                    log.info("bootstrap %s not reachable yet: %s", url, getattr(exc, "detail", exc))
            self.connmgr.wake()
            if pending:
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)

    def own_record(self) -> PeerRecord:
        relays: tuple[str, ...] = ()
        if self.private:
            relays = tuple(lk.peer_id for lk in self.links.open_links() if self.peer_url(lk.peer_id))
        return PeerRecord.create(
            self.identity,
            self.url,
            self.config.location,
            private=self.private,
            relays=relays,
            tags=self.config.tags,
            x25519=self.direct.public_key,
        )

    async def _send_pex(self, link: Link) -> None:
        records = [self.own_record()]
        fresh = sorted(self._records.records(), key=lambda r: r.seen, reverse=True)
        records += [r for r in fresh if r.peer_id != link.peer_id][: PEX_MAX_RECORDS - 1]
        legacy = not _speaks_1_1(link)  # an old node reads only the list form
        try:
            await link.send({"t": "pex", "records": [r.to_wire(legacy=legacy) for r in records]})
        except Exception as exc:
            log.debug("pex to %s failed: %s", link.peer_id, exc)

    async def _pex_loop(self) -> None:
        while True:
            await asyncio.sleep(PEX_INTERVAL_S)
            for link in self.links.open_links():
                await self._send_pex(link)

    def may_teach_peers(self, peer_id: str) -> bool:
        """Peer exchange is believed from a pre-trusted (bootstrap) peer, one the operator trusts, or one
        whose score reaches --pex-min-trust times an even share; a fresh stranger scores nothing."""
        if peer_id in self.trust.cache.pretrusted or self.trust.opinions.get(peer_id, 0.0) > 0:
            return True
        if self.config.pex_min_trust <= 0:
            return True
        scores = self.trust.cache.scores()
        score = scores.get(peer_id, 0.0)
        return score > 0 and score * len(scores) >= self.config.pex_min_trust

    def _refuse(self, peer_id: str, reason: str, detail: str) -> None:
        """A dropped ctl message: a log line and an audit row, at most one per peer, reason and interval."""
        if self._log.info((peer_id, reason), "dropped %s from %s: %s", reason, peer_id, detail):
            row = {
                "at": time.time(),
                "event": "rejected",
                "message_id": None,
                "peer_id": peer_id,
                "reason": reason,
            }
            self._spawn(self.store.commit_gossip([], [row]))

    def _on_pex(self, link: Link, message: dict[str, Any]) -> None:
        records = message.get("records")
        if not isinstance(records, list) or len(records) > PEX_MAX_RECORDS:
            self._refuse(link.peer_id, "pex_malformed", f"not a list of at most {PEX_MAX_RECORDS} records")
            self.peer_violated(link.peer_id, "pex")
            return
        if not self.may_teach_peers(link.peer_id):
            self._refuse(link.peer_id, "pex_untrusted", "its trust is below --pex-min-trust")
            return
        learned = 0
        for raw in records:
            try:
                record = PeerRecord.from_wire(raw)
            except ValueError as exc:
                self._refuse(link.peer_id, "pex_record", str(exc))
                continue
            if record.peer_id == self.peer_id or self.peer_blocked(record.peer_id):
                continue
            if not url_allowed(self.policy, record.url):
                self._refuse(
                    link.peer_id, "pex_address", f"a record's URL {record.url[:80]!r} is not dialled"
                )
                continue
            # Kept for dialling only: the registry's entries come from each subject's own writes.
            known = self._records.get(record.peer_id)
            if not self._records.add(record, link.peer_id):
                continue
            self.membership.record(known, record)
            self.peer_learned(record.peer_id, record.url, seen=record.seen)
            self._mark_private(record.peer_id, record.private, record.relays)
            if record.version > 1:
                self._note_keys(record.peer_id, record.tags, record.x25519)
            learned += 1
        if learned:
            self.connmgr.wake()

    # -- operations used by the API and CLI -------------------------------------------------

    def health(self) -> dict[str, Any]:
        return {
            "status": "ok",
            "peer_id": self.peer_id,
            "private": self.private,
            "name": self.config.name,
            "links": len(self.links.open_links()),
            "version": __version__,
            "url": self.url,
            "storage": self.store.storage,  # "full" or "unavailable" while writes are refused (507/503)
        }

    async def add_peer(self, url: str) -> dict[str, Any]:
        """Learn a peer from its URL's /healthz and store it."""
        url = await self.policy.check_url(url)
        health = await self.client.healthz(url)
        peer_id = health["peer_id"]
        if not is_peer_id(peer_id):
            raise PeerError(f"{url}/healthz returned an invalid peer_id")
        if peer_id == self.peer_id:
            raise PeerError(f"{url} is this node itself", code="self_dial", status=409)
        self.peer_learned(peer_id, url)
        if health.get("private") is True:  # its /offer says 403: dial it through the mesh
            self._mark_private(peer_id, True, ())
        self._peers[peer_id]["pinned"] = True  # the operator's choice, never collected
        row = await self.store.upsert_peer(peer_id, url=url, last_seen=time.time())
        return self._peer_view(row, self.trust.cache.scores())

    async def list_peers(self, limit: int) -> list[dict[str, Any]]:
        await self._flush_peers()
        scores = self.trust.cache.scores()
        return [self._peer_view(row, scores) for row in await self.store.list_peers(limit=limit)]

    def _peer_view(self, row: dict[str, Any], scores: Mapping[str, float]) -> dict[str, Any]:
        link = self.links.get(row["peer_id"])
        name = self.telemetry.get(row["peer_id"], {}).get("name")
        return {
            "peer_id": row["peer_id"],
            "name": name if valid_name(name) else None,  # as its own signed telemetry says
            "url": row.get("url"),
            "trust": scores.get(row["peer_id"], row.get("trust")),  # live, not last saved
            "last_seen": row.get("last_seen"),
            "linked": bool(link and link.state is LinkState.OPEN),
            "blocked": bool(row.get("blocked")),
            "tags": dict(self._peers.get(row["peer_id"], {}).get("tags") or {}),
        }

    async def dial(self, *, url: str | None = None, peer_id: str | None = None) -> Link:
        if url is not None:
            link = await self.links.dial_url(url)
        else:
            assert peer_id is not None
            link = await self.links.dial(peer_id)
        self.connmgr.release(link.peer_id)
        return link

    def link_views(self) -> list[dict[str, Any]]:
        views = []
        for link in self.links.links():
            local, remote = link.ice_pair()
            sample = self.qos.latest.get(link.link_id)
            views.append(
                {
                    "link_id": link.link_id,
                    "peer_id": link.peer_id,
                    "state": link.state.value,
                    "health": sample.health if sample else "unknown",
                    "rtt_ms": sample.rtt_ms if sample else None,
                    "jitter_ms": sample.jitter_ms if sample else None,
                    "loss_pct": sample.loss_pct if sample else None,
                    "bitrate_kbps": sample.bitrate_kbps if sample else None,
                    "updated_at": sample.at
                    if sample
                    else (link.closed_at or link.opened_at or link.created_at),
                    "direction": link.direction,
                    "setup_ms": link.setup_ms,
                    "reason": link.reason,
                    "ice": {"local": local, "remote": remote},
                    "path": path_kind(local, remote),
                    "signaling": link.signaling,
                }
            )
        return views

    async def set_blocked(self, peer_id: str, blocked: bool) -> None:
        """A blocked peer is refused on every path: offers, dials, peer exchange, its open link."""
        record = self._peers.setdefault(peer_id, {"peer_id": peer_id, "url": None})
        record["blocked"] = blocked
        await self.store.set_peer_blocked(peer_id, blocked)
        if blocked:
            self.connmgr.hold(peer_id)
            await self.links.close_link(peer_id, "blocked by operator")
        else:
            self.connmgr.release(peer_id)
            self.links.release(peer_id)

    async def close_link(self, peer_id: str) -> bool:
        self.connmgr.hold(peer_id)
        return await self.links.close_link(peer_id)

    # -- direct messages and queries: the node's side (f0mesh/direct.py, f0mesh/query.py) ----------

    def _direct_neighbours(self) -> list[str]:
        """Open links whose peer reads direct frames (an old node holds an unknown kind against us)."""
        return [
            lk.peer_id
            for lk in self.links.open_links()
            if _speaks_1_1(lk) and not self.peer_blocked(lk.peer_id)
        ]

    def _linked_to(self, peer_id: str) -> list[str]:
        """Neighbours whose own telemetry lists a link to ``peer_id``: a direct frame's way there."""
        found = []
        for link in self.links.open_links():
            links = self.telemetry.get(link.peer_id, {}).get("links")
            if isinstance(links, list) and any(
                isinstance(lk, dict) and lk.get("peer_id") == peer_id for lk in links[:256]
            ):
                found.append(link.peer_id)
        return found

    def _direct_dropped(self, neighbour: str, reason: str, detail: str) -> None:
        self._refuse(neighbour, reason, detail)
        if reason in ("direct_malformed", "direct_too_large"):
            self.peer_violated(neighbour, "direct")

    def _note_keys(self, peer_id: str, tags: dict[str, str], x25519: bytes | None) -> None:
        """What a verified record says for direct messages and query filters."""
        record = self._peers.get(peer_id)
        if record is None:
            return
        if record.get("tags", {}) != tags:
            if "tags" in record:
                self.membership.tags_changed(peer_id, tags)
            record["tags"] = dict(tags)
        if x25519 is not None:
            record["x25519"] = x25519

    def _direct_delivered(self, received: Received) -> None:
        try:
            payload = msgpack.unpackb(received.body, raw=False)
        except Exception as exc:  # signed by its sender, but not a value: the sender's bug
            raise DirectDropped("direct message body is not msgpack", code="direct_malformed") from exc
        self.events.publish(
            "direct",
            {
                "id": received.frame_id.hex(),
                "from": received.sender,
                "sent_at": received.sent_at,
                **(
                    {"payload_b64": base64.b64encode(payload).decode("ascii")}
                    if isinstance(payload, bytes)
                    else {"payload": payload}
                ),
            },
        )

    async def send_direct(self, peer_id: str, payload: Any) -> str:
        """Send ``payload`` (JSON-like or bytes) to one peer, sealed to its key; the message id."""
        try:
            body = msgpack.packb(payload, use_bin_type=True)
        except (TypeError, ValueError) as exc:
            raise F0MeshError(f"payload is not JSON-like or bytes: {exc}", code="bad_payload") from exc
        return await self.direct.send(peer_id, "msg", body)

    def query_targets(self, peers: list[str] | None, tags: dict[str, str] | None) -> list[str]:
        """Known peers (this node too) that are in ``peers`` if given and carry every tag in ``tags``."""
        known = {self.peer_id: self.config.tags} | {
            pid: rec.get("tags") or {}
            for pid, rec in self._peers.items()
            if rec.get("x25519") is not None and rec.get("status") not in ("left", "gone")
        }
        chosen = list(dict.fromkeys(peers)) if peers is not None else list(known)
        wanted = (tags or {}).items()
        return [p for p in chosen if all(known.get(p, {}).get(k) == v for k, v in wanted)]

    async def query(
        self,
        name: str,
        payload: Any,
        *,
        peers: list[str] | None = None,
        tags: dict[str, str] | None = None,
        timeout: float = 5.0,
    ) -> dict[str, Any]:
        targets = self.query_targets(peers, tags)
        return {"targets": targets, **await self.queries.ask(name, payload, targets, timeout)}


def _speaks_1_1(link: Link) -> bool:
    version = link.remote_version
    return bool(version) and tuple(version) >= (1, 1)  # type: ignore[arg-type]


@contextlib.asynccontextmanager
async def running(config: NodeConfig):
    node = Node(config)
    await node.start()
    try:
        yield node
    finally:
        await node.stop()
