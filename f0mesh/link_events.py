"""The link manager as the node builds it, and what links report, handed to the parts that care.

A link opening or ending touches metrics, the ``mesh_links`` rows, the event bus, membership, QoS,
the peer book, gossip, state sync, peer exchange, the connection manager and telemetry; a ctl
message from a peer goes through the one blocked-peer check and then the ctl router. The manager is
built before the parts that use it (gossip, state, peer exchange need links), so those are bound
after it, in ``bind``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from f0mesh.address_policy import AddressPolicy
from f0mesh.config import NodeConfig
from f0mesh.ctl import CtlRouter
from f0mesh.errors import PeerError
from f0mesh.events import EventBus
from f0mesh.gossip import GossipEngine
from f0mesh.heap import TrimAfterBurst
from f0mesh.identity import Identity
from f0mesh.latest_writer import LatestWriter
from f0mesh.membership import Membership
from f0mesh.mesh_signaling import MeshSignaling
from f0mesh.metrics import NodeMetrics
from f0mesh.peer_book import PeerBook
from f0mesh.peer_exchange import PeerExchange
from f0mesh.qos.health import Health
from f0mesh.qos.sampler import QoSSampler, Sample
from f0mesh.rtc.connection_manager import ConnectionManager
from f0mesh.rtc.dial_gate import DialGate
from f0mesh.rtc.link import Link, LinkSettings, LinkState
from f0mesh.rtc.link_manager import LinkManager
from f0mesh.rtc.resources import ResourceLimits
from f0mesh.rtc.signaling_client import SignalingClient
from f0mesh.state import ReplicatedState
from f0mesh.store import Store
from f0mesh.tasks import TaskSet
from f0mesh.telemetry import Telemetry

log = logging.getLogger(__name__)

LINK_ROWS_CLOSE_S = 5.0
LINK_VALUE_HORIZON_S = 600.0
LINK_VALUE_TRUST_CAP = 4.0  # even shares of trust: above this, more trust buys no more link value
_HEALTH_VALUE = {Health.GOOD: 1.0, Health.DEGRADED: 0.5, Health.UNKNOWN: 0.5, Health.BAD: 0.0}


def build_links(
    config: NodeConfig,
    identity: Identity,
    policy: AddressPolicy,
    client: SignalingClient,
    delegate: LinkEvents,
    violated: Callable[[str, str], None],
) -> tuple[LinkManager, ResourceLimits]:
    """The link manager as the configuration says, with the limits on what its links hold."""
    resources = ResourceLimits(
        max_links=config.max_links,
        max_pending_offers=config.max_pending_offers,
        reassembly_total_bytes=config.reassembly_total_bytes,
        reassembly_per_peer_bytes=2 * LinkSettings.max_message_size,
    )
    links = LinkManager(
        identity,
        local_url=None if config.no_public_url else config.advertised_url,
        settings=LinkSettings(
            ice_servers=config.ice_servers,
            relay_only=config.ice_relay_only,
            heartbeat_interval=config.heartbeat_interval,
            heartbeat_timeout=config.heartbeat_timeout,
            connect_timeout=config.connect_timeout,
            on_violation=violated,
            memory=resources.memory,
        ),
        policy=policy,
        client=client,
        delegate=delegate,
        max_links=resources.max_links,
        max_pending_offers=resources.max_pending_offers,
        gate=DialGate(config.dial_rate, config.dial_burst),
    )
    return links, resources


class LinkValue:
    """Pruning order, the lowest value first: trust, then the link's health, then its age.

    Trust is what keeps an eclipse out: Sybils that fill a node's link slots arrive with no trust and
    go before the honest links. In simulation (sim/eclipse.py, 1,000 peers) a victim pruning at random
    ended with only Sybil links and received nothing; pruning by trust it kept its honest links and
    every message. Health then prefers working paths, and age a little, so a link is not churned for a
    marginally better one. ``scores()`` are the trust layer's (they sum to 1); ``samples`` the QoS
    sampler's latest sample per link id."""

    def __init__(self, scores: Callable[[], Mapping[str, float]], samples: Mapping[str, Sample]) -> None:
        self._scores = scores
        self._samples = samples

    def __call__(self, link: Link) -> float:
        scores = self._scores()
        share = scores.get(link.peer_id, 0.0) * max(len(scores), 1)  # 1.0: an even share of trust
        trust = min(share, LINK_VALUE_TRUST_CAP) / LINK_VALUE_TRUST_CAP
        sample = self._samples.get(link.link_id)
        health = _HEALTH_VALUE.get(sample.health if sample is not None else Health.UNKNOWN, 0.5)
        age = min(time.time() - (link.opened_at or time.time()), LINK_VALUE_HORIZON_S) / LINK_VALUE_HORIZON_S
        return 4.0 * trust + health + 0.5 * age


@dataclass
class Bound:
    """The parts built after the link manager."""

    links: LinkManager
    qos: QoSSampler
    gossip: GossipEngine
    state: ReplicatedState
    connmgr: ConnectionManager
    pex: PeerExchange
    telemetry: Telemetry
    signaling: MeshSignaling
    trim: TrimAfterBurst


class LinkEvents:
    def __init__(
        self,
        store: Store,
        book: PeerBook,
        metrics: NodeMetrics,
        events: EventBus,
        membership: Membership,
        ctl: CtlRouter,
        tasks: TaskSet,
    ) -> None:
        self.book = book
        self.metrics = metrics
        self.events = events
        self.membership = membership
        self.ctl = ctl
        self.tasks = tasks
        self._store = store
        self._p: Bound | None = None
        self._links: LinkManager | None = None
        # one writer, latest state per link: a slow "open" write must not land after the "closed" one
        self._rows: LatestWriter[str, dict[str, Any]] = LatestWriter(
            lambda row: store.upsert_link(row), what="mesh_links"
        )

    def bind(self, parts: Bound) -> None:
        self._p = parts
        self._links = parts.links

    def unbind(self) -> None:
        """The node is stopping: links that end now are not news to the other parts."""
        self._p = None

    # -- LinkDelegate ----------------------------------------------------------------------

    def link_state_changed(self, link: Link) -> None:
        self.metrics.link_state(link)
        row = link.describe()
        self._rows.put(link.link_id, row)
        self.events.publish("link", {k: row[k] for k in ("link_id", "peer_id", "state", "reason")})
        p = self._p
        if p is None:
            return
        if link.state is LinkState.OPEN:
            p.qos.add(link)
            self.membership.opened(link.peer_id)
            self.tasks.spawn(p.gossip.on_neighbour_up(link.peer_id), name="gossip-up")
            if not link.browser:  # a page is an ephemeral local link: no peer row, registry or state sync
                self.book.learned(link.peer_id, None)
                self.book.mark(link.peer_id, linked=True)
                self.tasks.spawn(p.pex.send(link.peer_id), name="pex-send")
                p.state.on_link_open(link.peer_id)
            self.changed()
        elif link.state in (LinkState.FAILED, LinkState.CLOSED):
            p.qos.remove(link.link_id)
            if p.links.get(link.peer_id) in (None, link):
                self.metrics.link_gone(link.peer_id)
                self.tasks.spawn(p.gossip.on_neighbour_down(link.peer_id), name="gossip-down")
                self.membership.ended(link.peer_id, failed=link.state is LinkState.FAILED, reason=link.reason)
            p.connmgr.link_closed(link)
            self.changed()

    async def link_message(self, link: Link, message: dict[str, Any]) -> None:
        if not self.book.blocked(link.peer_id):
            await self.ctl.dispatch(link.peer_id, message)

    def link_probe(self, link: Link, data: bytes) -> None:
        if self._p is not None:
            self._p.qos.on_probe(link, data)

    def peer_learned(self, peer_id: str, url: str | None) -> None:
        self.book.learned(peer_id, url)

    def peer_url(self, peer_id: str) -> str | None:
        return self.book.url(peer_id)

    def peer_blocked(self, peer_id: str) -> bool:
        return self.book.blocked(peer_id)

    def mesh_relays(self, peer_id: str) -> list[str]:
        return self._p.signaling.relays(peer_id) if self._p is not None else []

    # -- what else links and their QoS report --------------------------------------------

    def changed(self) -> None:
        """News for the topology: a telemetry summary soon, and the burst's heap back to the OS."""
        if self._p is not None:
            self._p.trim.poke()
            self._p.telemetry.schedule()

    async def send(self, peer_id: str, message: dict[str, Any]) -> None:
        link = self._links.get(peer_id) if self._links is not None else None
        if link is None or link.state is not LinkState.OPEN:
            raise PeerError(f"no open link to {peer_id}")
        await link.send(message)

    async def store_samples(self, samples: list[Sample]) -> None:
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
            event = {"link_id": s.link_id, "peer_id": s.peer_id, "health": s.health, "updated_at": s.at}
            self.events.publish("qos", {**event, **figures})
        await self._store.add_samples([s.row() for s in samples], current)

    def health_changed(self, link: Any, old: str, new: str) -> None:
        log.info("link %s to %s: health %s -> %s", link.link_id, link.peer_id, old, new)
        if "bad" in (old, new):  # news for the topology; good <-> fair flapping waits for the next summary
            self.changed()

    async def close(self) -> None:
        await self._rows.close(LINK_ROWS_CLOSE_S)
