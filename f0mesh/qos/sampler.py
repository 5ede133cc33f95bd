"""Probing and sampling of every open link.

Each link gets a LinkMeter; probes go out at ``probe_rate`` per second on the link's unreliable
probe channel and pings are answered at once. Every ``interval`` seconds each link's window
becomes one sample: the figures, a health class, and a row for the store. An idle link still
reports RTT because probes, not traffic, measure it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from typing import Any, Protocol

from f0mesh.errors import StoreUnavailableError
from f0mesh.log_throttle import LogThrottle
from f0mesh.qos.health import DEFAULT_THRESHOLDS, Health, HealthThresholds, classify
from f0mesh.qos.meter import LinkMeter
from f0mesh.qos.probe import ProbeError, answer_ping, decode_probe, encode_probe, is_pong

log = logging.getLogger("f0mesh.qos.sampler")


class ProbedLink(Protocol):
    link_id: str
    peer_id: str

    def send_probe(self, data: bytes) -> bool: ...

    @property
    def bytes_sent(self) -> int: ...

    @property
    def bytes_received(self) -> int: ...


@dataclass
class Sample:
    link_id: str
    peer_id: str
    at: float
    health: str
    rtt_ms: float | None
    rtt_p95_ms: float | None
    jitter_ms: float | None
    loss_pct: float | None
    bitrate_kbps: float | None
    tx_kbps: float | None
    rx_kbps: float | None
    probes_sent: int
    probes_answered: int
    probes_lost: int

    def row(self) -> dict[str, Any]:
        return asdict(self)


class QoSSampler:
    def __init__(
        self,
        *,
        interval: float,
        probe_rate: float,
        on_sample: Callable[[list[Sample]], Awaitable[None]],
        on_health_change: Callable[[ProbedLink, str, str], None] | None = None,
        thresholds: HealthThresholds = DEFAULT_THRESHOLDS,
        probe_timeout_s: float | None = None,
    ) -> None:
        self.interval = interval
        self.probe_rate = probe_rate
        self.thresholds = thresholds
        # A probe is lost once unanswered for 2 s, or for two probe periods at slow rates.
        self.probe_timeout_s = probe_timeout_s or max(2.0, 2.0 / max(probe_rate, 0.01))
        self._on_sample = on_sample
        self._log = LogThrottle(log)
        self._on_health_change = on_health_change
        self._links: dict[str, ProbedLink] = {}
        self._meters: dict[str, LinkMeter] = {}
        self.latest: dict[str, Sample] = {}
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self._tasks = [asyncio.ensure_future(self._probe_loop()), asyncio.ensure_future(self._sample_loop())]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def add(self, link: ProbedLink) -> None:
        self._links[link.link_id] = link
        meter = LinkMeter(timeout_s=self.probe_timeout_s)
        meter.add_bytes(link.bytes_sent, link.bytes_received)
        self._meters[link.link_id] = meter

    def remove(self, link_id: str) -> None:
        self._links.pop(link_id, None)
        self._meters.pop(link_id, None)
        self.latest.pop(link_id, None)

    def on_probe(self, link: ProbedLink, data: bytes) -> None:
        """Answer pings at once; feed pongs to the link's meter. Malformed probes are dropped."""
        try:
            message = decode_probe(data)
        except ProbeError:
            return
        if is_pong(message):
            meter = self._meters.get(link.link_id)
            if meter is not None:
                meter.on_pong(message)
        else:
            link.send_probe(encode_probe(answer_ping(message)))

    async def _probe_loop(self) -> None:
        """Probes on absolute deadlines, so the work of sending never stretches the period."""
        loop = asyncio.get_running_loop()
        period = 1.0 / self.probe_rate
        deadline = loop.time()
        while True:
            deadline = max(deadline + period, loop.time())
            await asyncio.sleep(deadline - loop.time())
            for link_id, link in list(self._links.items()):
                meter = self._meters.get(link_id)
                if meter is None:
                    continue
                try:
                    link.send_probe(encode_probe(meter.ping()))
                except Exception as exc:  # a closing transport: the link's own life cycle handles it
                    log.debug("probe on %s failed: %s", link_id, exc)

    async def _sample_loop(self) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time()
        while True:
            deadline = max(deadline + self.interval, loop.time())
            await asyncio.sleep(deadline - loop.time())
            samples = self.sample_now()
            if samples:
                try:
                    await self._on_sample(samples)
                except StoreUnavailableError as exc:  # a full disk: a line every few seconds, no traceback
                    self._log.warning("store", "%d QoS samples not stored: %s", len(samples), exc.detail)
                except Exception:
                    log.exception("storing %d QoS samples failed", len(samples))

    def sample_now(self) -> list[Sample]:
        samples = []
        now = time.time()
        for link_id, link in list(self._links.items()):
            meter = self._meters[link_id]
            meter.add_bytes(link.bytes_sent, link.bytes_received)
            qos = meter.snapshot()
            health = classify(qos, self.thresholds)
            previous = self.latest.get(link_id)
            sample = Sample(
                link_id=link_id,
                peer_id=link.peer_id,
                at=now,
                health=health.value,
                rtt_ms=qos.rtt_ms,
                rtt_p95_ms=qos.rtt_p95_ms,
                jitter_ms=qos.jitter_ms,
                loss_pct=qos.loss_pct,
                bitrate_kbps=qos.bitrate_kbps,
                tx_kbps=qos.tx_kbps,
                rx_kbps=qos.rx_kbps,
                probes_sent=qos.probes_sent,
                probes_answered=qos.probes_answered,
                probes_lost=qos.probes_lost,
            )
            self.latest[link_id] = sample
            old = previous.health if previous else Health.UNKNOWN.value
            if self._on_health_change and old != sample.health:
                self._on_health_change(link, old, sample.health)
            samples.append(sample)
        return samples
