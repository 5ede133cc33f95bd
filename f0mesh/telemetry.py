"""Telemetry: this node's link summary gossiped on topic ``telemetry``, and the mesh's summaries heard.

Link changes come in bursts (a mesh forming, a neighbour pruning): one summary a second after a
change covers its burst, and at most one goes out every ``TELEMETRY_MIN_GAP_S``, or link churn
becomes most of the mesh's gossip. A summary also goes out when none went for a period drawn from
the last quarter of ``--gossip-interval``: a change-driven summary restarts the period (it told the
mesh the same thing), and the jitter keeps nodes started together from publishing in the same
second, a burst of N summaries and their duplicates every period. Which origins were heard from
recently (any topic) tells the connection manager which island this node is in.

Both tables are kept per origin, and origins are free to mint: each holds at most ``max_origins``;
when full, a newcomer takes the place of the least trusted origin held only if it is more trusted
(so invented identities, all at trust 0, cannot push out anyone), and heard-from entries past their
horizon go first.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable, Mapping
from typing import Any

from f0mesh.config import NodeConfig
from f0mesh.gossip import GossipEngine, StoredMessage
from f0mesh.qos.sampler import QoSSampler
from f0mesh.rtc.link_manager import LinkManager
from f0mesh.tasks import TaskSet

log = logging.getLogger(__name__)

TELEMETRY_TOPIC = "telemetry"
TELEMETRY_MIN_GAP_S = 10.0
BURST_S = 1.0  # a summary this long after the first change of a burst covers the burst
PERIOD_JITTER = 0.25  # the periodic summary comes after (1 - jitter .. 1) x --gossip-interval of quiet
FIGURES = ("health", "rtt_ms", "jitter_ms", "loss_pct", "bitrate_kbps")
MAX_ORIGINS = 1024


class Telemetry:
    def __init__(
        self,
        config: NodeConfig,
        gossip: GossipEngine,
        links: LinkManager,
        qos: QoSSampler,
        tasks: TaskSet,
        *,
        scores: Callable[[], Mapping[str, float]] = dict,
        max_origins: int = MAX_ORIGINS,
        rng: random.Random | None = None,
    ) -> None:
        self._gossip = gossip
        self._links = links
        self._qos = qos
        self._tasks = tasks
        self._scores = scores
        self.max_origins = max_origins
        self._about = {"url": config.advertised_url, "location": config.location, "name": config.name}
        self.interval = config.gossip_interval
        self.received: dict[str, dict[str, Any]] = {}  # origin -> its last summary
        self._heard: dict[str, float] = {}
        self._due: asyncio.TimerHandle | None = None
        self._sent_at = -TELEMETRY_MIN_GAP_S
        self._period_from = 0.0  # loop time the current period runs from (set when the loop starts)
        self._rng = rng or random.Random()
        self._running = True
        gossip.subscribe(None, self._delivered)

    def _delivered(self, message: StoredMessage) -> None:
        origin = message.origin
        if origin not in self._heard and len(self._heard) >= self.max_origins:
            horizon = self._horizon()
            for peer in [p for p, at in self._heard.items() if at < horizon]:
                del self._heard[peer]
        if self._room(self._heard, origin):
            self._heard[origin] = message.received_at
        if (
            message.topic == TELEMETRY_TOPIC
            and isinstance(message.payload, dict)
            and self._room(self.received, origin)
        ):
            self.received[origin] = {**message.payload, "received_at": message.received_at}

    def _room(self, table: dict[str, Any], origin: str) -> bool:
        """Whether ``origin`` may have an entry, evicting the least trusted if it is more trusted."""
        if origin in table or len(table) < self.max_origins:
            return True
        scores = self._scores()
        least = min(table, key=lambda peer: scores.get(peer, 0.0))  # among equals, the first inserted
        if scores.get(origin, 0.0) <= scores.get(least, 0.0):
            return False
        del table[least]
        return True

    def _horizon(self) -> float:
        return time.time() - 2 * self.interval - 10

    def heard_recently(self) -> set[str]:
        """Origins whose gossip arrived within two telemetry periods: the island this node is in."""
        horizon = self._horizon()
        return {peer for peer, at in self._heard.items() if at >= horizon}

    def summary(self) -> dict[str, Any]:
        links = []
        for link in self._links.open_links():
            sample = self._qos.latest.get(link.link_id)
            figures = {k: getattr(sample, k) for k in FIGURES} if sample else dict.fromkeys(FIGURES)
            if sample is None:
                figures["health"] = "unknown"
            links.append({"peer_id": link.peer_id, **figures})
        return {**self._about, "links": links}

    def mesh_view(self, own_id: str) -> dict[str, dict[str, Any]]:
        """Every origin's last summary, this node's own current one included."""
        return {**self.received, own_id: {**self.summary(), "received_at": None}}

    def schedule(self) -> None:
        """One summary a second after a link change covers its burst (see TELEMETRY_MIN_GAP_S)."""
        if self._due is None and self._running:
            loop = asyncio.get_running_loop()
            delay = max(BURST_S, self._sent_at + TELEMETRY_MIN_GAP_S - loop.time())
            self._due = loop.call_later(delay, self._publish_soon)

    def _publish_soon(self) -> None:
        self._due = None
        self._tasks.spawn(self.publish(), name="telemetry")

    async def publish(self) -> None:
        try:
            self._sent_at = self._period_from = asyncio.get_running_loop().time()
            await self._gossip.publish(TELEMETRY_TOPIC, self.summary())
        except Exception as exc:
            log.info("telemetry publish failed: %s", exc)

    def next_period(self) -> float:
        return self.interval * (1.0 - PERIOD_JITTER * self._rng.random())

    async def loop(self) -> None:
        """At least one summary per ``--gossip-interval``; none while change-driven ones keep it fresh."""
        loop = asyncio.get_running_loop()
        self._period_from = loop.time()
        period = self.next_period()
        while True:
            wait = self._period_from + period - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
                continue
            await self.publish()
            period = self.next_period()

    def close(self) -> None:
        self._running = False
        if self._due is not None:
            self._due.cancel()
            self._due = None
