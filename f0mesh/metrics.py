"""Prometheus metrics of one node, in a registry of its own so several nodes can share a process."""

from __future__ import annotations

from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest

if TYPE_CHECKING:
    from f0mesh.rtc.link import Link


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
        self._open: set[str] = set()

    def link_state(self, link: Link) -> None:
        self.link_events.labels(state=link.state.value).inc()
        if link.state.value == "open":
            self._open.add(link.link_id)
        else:
            self._open.discard(link.link_id)
        self.links_open.set(len(self._open))

    def render(self) -> bytes:
        return generate_latest(self.registry)
