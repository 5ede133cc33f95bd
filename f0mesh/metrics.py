"""Prometheus metrics of one node, in a registry of its own so several nodes can share a process."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from f0mesh.rtc.link import Link

_HEALTH_VALUE = {"good": 2, "degraded": 1, "bad": 0}


class NodeMetrics:
    def __init__(self, peer_id: str) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.info = Gauge(
            "f0mesh_node_info",
            "Constant 1, labelled with the node's PeerId",
            ["peer_id"],
            registry=self.registry,
        )
        self.info.labels(peer_id=peer_id).set(1)
        self.links_open = Gauge("f0mesh_links_open", "Links currently open", registry=self.registry)
        self.link_events = Counter(
            "f0mesh_link_state_changes_total", "Link state transitions", ["state"], registry=self.registry
        )
        self.http_errors = Counter(
            "f0mesh_http_errors_total",
            "HTTP error responses by status and code",
            ["status", "code"],
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
            name: Gauge(f"f0mesh_link_{name}", help_, ["peer_id"], registry=self.registry)
            for name, help_ in (
                ("rtt_ms", "Median probe round-trip time over the last QoS window (ms)"),
                ("jitter_ms", "RFC 3550 interarrival jitter of probes (ms)"),
                ("loss_pct", "Round-trip probe loss over the last QoS window (%)"),
                ("bitrate_kbps", "Bytes sent and received on the link per second, both directions (kbps)"),
                ("health", "Link health: 2 good, 1 degraded, 0 bad, -1 unknown"),
            )
        }

    def link_state(self, link: Link) -> None:
        self.link_events.labels(state=link.state.value).inc()
        if link.state.value == "open":
            self._open.add(link.link_id)
            self.links_opened.labels(path=link.path or "unknown", signaling=link.signaling).inc()
        else:
            self._open.discard(link.link_id)
        self.links_open.set(len(self._open))

    def link_sample(self, peer_id: str, figures: dict[str, float | None], health: str) -> None:
        for name, value in figures.items():
            gauge = self.link_gauges[name]
            if value is None:
                with contextlib.suppress(KeyError):
                    gauge.remove(peer_id)
            else:
                gauge.labels(peer_id=peer_id).set(value)
        self.link_gauges["health"].labels(peer_id=peer_id).set(_HEALTH_VALUE.get(health, -1))

    def link_gone(self, peer_id: str) -> None:
        """Per-link series disappear with the link, so dashboards do not show ghosts."""
        for gauge in self.link_gauges.values():
            with contextlib.suppress(KeyError):
                gauge.remove(peer_id)

    def add_counters(
        self, prefix: str, samples: Callable[[], Iterable[tuple[str, dict[str, str], int]]]
    ) -> None:
        """Expose a part's own plain counters (e.g. gossip stats) under ``prefix``, read at scrape time."""
        self.registry.register(_SampleCollector(prefix, samples))

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _SampleCollector(Collector):
    def __init__(self, prefix: str, samples: Callable[[], Iterable[tuple[str, dict[str, str], int]]]) -> None:
        self.prefix = prefix
        self.samples = samples

    def collect(self) -> Iterable[CounterMetricFamily]:
        families: dict[str, CounterMetricFamily] = {}
        for name, labels, value in self.samples():
            family = families.get(name)
            if family is None:
                family = families[name] = CounterMetricFamily(
                    f"{self.prefix}_{name}", f"{self.prefix} {name.replace('_', ' ')}", labels=sorted(labels)
                )
            family.add_metric([labels[k] for k in sorted(labels)], value)
        return list(families.values())
