"""Prometheus metrics of one node, in a registry of its own so several nodes can share a process.

Names follow the Prometheus naming guide: base units (seconds, ratios, bytes), ``_total`` on
counters, everything under ``f0mesh_``. The gossip counters left the libp2p ``gossipsub_``
namespace: f0mesh's push/ack/repair protocol is not GossipSub, and a libp2p dashboard reading them
would show numbers that mean something else. JSON fields of the API keep their own units.
"""

from __future__ import annotations

import contextlib
import platform
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    ProcessCollector,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from f0mesh import __version__

if TYPE_CHECKING:
    from f0mesh.gossip.engine import GossipEngine
    from f0mesh.gossip.store import StoredMessage
    from f0mesh.rtc.link import Link

# A *_created series per counter doubles the series count and is read by nothing we ship.
disable_created_metrics()

_HEALTH_VALUE = {"good": 2, "degraded": 1, "bad": 0}
# publish at the origin -> local receipt: a LAN hop takes ~1 ms, repair after a partition up to a minute
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

# JSON figure of a QoS sample -> (gauge name, help, factor to the base unit)
_LINK_FIGURES = {
    "rtt_ms": ("rtt_seconds", "Median probe round-trip time over the last QoS window", 1e-3),
    "jitter_ms": ("jitter_seconds", "RFC 3550 interarrival jitter of the link's probes", 1e-3),
    "loss_pct": ("loss_ratio", "Share of probes unanswered over the last QoS window (0 to 1)", 1e-2),
}

_RCVBUF_HELP = "Effective SO_RCVBUF of the link's UDP socket, as the kernel reports it (capped by rmem_max)"
_SNDBUF_HELP = "Effective SO_SNDBUF of the link's UDP socket, as the kernel reports it (capped by wmem_max)"

CounterSamples = Callable[[], Iterable[tuple[str, str, Mapping[str, str], float]]]


class NodeMetrics:
    def __init__(self, peer_id: str) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        ProcessCollector(registry=self.registry)
        Info(
            "f0mesh_build",
            "Constant 1, labelled with the f0mesh and Python versions this node runs",
            registry=self.registry,
        ).info({"version": __version__, "python": platform.python_version()})
        self.info = Gauge(
            "f0mesh_node_info",
            "Constant 1, labelled with the node's PeerId (join on it to name instances)",
            ["peer_id"],
            registry=self.registry,
        )
        self.info.labels(peer_id=peer_id).set(1)
        self.links_open = Gauge(
            "f0mesh_links_open", "Links to peers whose DataChannel is open now", registry=self.registry
        )
        self.link_events = Counter(
            "f0mesh_link_state_changes_total",
            "Link state transitions, by the state entered",
            ["state"],
            registry=self.registry,
        )
        self.http_errors = Counter(
            "f0mesh_http_errors_total",
            "HTTP error responses of the API, by status and error code",
            ["status", "code"],
            registry=self.registry,
        )
        self.delivery_latency = Histogram(
            "f0mesh_gossip_delivery_latency_seconds",
            "Time from publication at the origin (its HLC wall clock) to local receipt of a first copy",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.links_opened = Counter(
            "f0mesh_links_opened_total",
            "Links opened, by ICE path (host, srflx, prflx, relay) and signaling (http, mesh)",
            ["path", "signaling"],
            registry=self.registry,
        )
        self.relay_refused = Counter(
            "f0mesh_relay_refused_total",
            "Relayed signaling messages refused, by reason",
            ["reason"],
            registry=self.registry,
        )
        self._open: set[str] = set()
        self.link_gauges = {
            key: (Gauge(f"f0mesh_link_{name}", help_, ["peer_id"], registry=self.registry), factor)
            for key, (name, help_, factor) in _LINK_FIGURES.items()
        }
        self.link_health = Gauge(
            "f0mesh_link_health",
            "Link health from the QoS thresholds: 2 good, 1 degraded, 0 bad, -1 unknown",
            ["peer_id"],
            registry=self.registry,
        )

    def link_state(self, link: Link) -> None:
        self.link_events.labels(state=link.state.value).inc()
        if link.state.value == "open":
            self._open.add(link.link_id)
            self.links_opened.labels(path=link.path or "unknown", signaling=link.signaling).inc()
        else:
            self._open.discard(link.link_id)
        self.links_open.set(len(self._open))

    def link_sample(self, peer_id: str, figures: Mapping[str, float | None], health: str) -> None:
        """Figures as the API has them (``rtt_ms``, ``loss_pct``...), exposed in base units."""
        for key, (gauge, factor) in self.link_gauges.items():
            value = figures.get(key)
            if value is None:
                with contextlib.suppress(KeyError):
                    gauge.remove(peer_id)
            else:
                gauge.labels(peer_id=peer_id).set(value * factor)
        self.link_health.labels(peer_id=peer_id).set(_HEALTH_VALUE.get(health, -1))

    def link_gone(self, peer_id: str) -> None:
        """Per-link series disappear with the link, so dashboards do not show ghosts."""
        for gauge in [g for g, _ in self.link_gauges.values()] + [self.link_health]:
            with contextlib.suppress(KeyError):
                gauge.remove(peer_id)

    def watch_links(self, links: Callable[[], Iterable[Link]]) -> None:
        """Per-link byte counters, read from the open links at scrape time."""

        def samples() -> Iterable[tuple[str, str, Mapping[str, str], float]]:
            for link in links():
                labels = {"peer_id": link.peer_id}
                yield "link_sent_bytes", "Bytes sent on the link, all channels", labels, link.bytes_sent
                yield "link_received_bytes", "Bytes received on the link", labels, link.bytes_received
                frames = link.framed.stats
                yield "link_sent_frames", "Frames sent on its ctl channel", labels, frames.frames_out
                yield "link_received_frames", "Frames received on its ctl channel", labels, frames.frames_in

        def buffers() -> Iterable[tuple[str, str, Mapping[str, str], float]]:
            for link in links():
                sizes = link.udp_buffers
                if sizes is not None:
                    labels = {"peer_id": link.peer_id}
                    yield "link_udp_receive_buffer_bytes", _RCVBUF_HELP, labels, sizes.receive
                    yield "link_udp_send_buffer_bytes", _SNDBUF_HELP, labels, sizes.send

        self.add_counters("f0mesh", samples)
        self.registry.register(_SampleCollector("f0mesh", buffers, GaugeMetricFamily))

    def watch_gossip(self, engine: GossipEngine, own_peer_id: str) -> None:
        """Gossip counters at scrape time, and the delivery latency of every first copy received."""
        self.add_counters("f0mesh_gossip", engine.stats.samples)

        def delivered(message: StoredMessage) -> None:
            if message.origin != own_peer_id:
                # clocks within the accepted skew may put receipt before publication: count that as 0
                self.delivery_latency.observe(max(0.0, message.received_at - message.created_at))

        engine.subscribe(None, delivered)

    def add_counters(self, prefix: str, samples: CounterSamples) -> None:
        """Expose a part's own plain counters under ``prefix``, read at scrape time.

        ``samples()`` yields (name, help, labels, value); ``_total`` is appended to each name.
        """
        self.registry.register(_SampleCollector(prefix, samples))

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _SampleCollector(Collector):
    def __init__(
        self,
        prefix: str,
        samples: CounterSamples,
        family_type: type[CounterMetricFamily | GaugeMetricFamily] = CounterMetricFamily,
    ) -> None:
        self.prefix = prefix
        self.samples = samples
        self.family_type = family_type

    def collect(self) -> Iterable[CounterMetricFamily | GaugeMetricFamily]:
        families: dict[str, CounterMetricFamily | GaugeMetricFamily] = {}
        for name, help_, labels, value in self.samples():
            family = families.get(name)
            if family is None:
                family = families[name] = self.family_type(
                    f"{self.prefix}_{name}", help_, labels=sorted(labels)
                )
            family.add_metric([labels[k] for k in sorted(labels)], value)
        return list(families.values())
