"""A node never picks a browser page as a relay for signaling through the mesh (node.mesh_relays)."""

from __future__ import annotations

from types import SimpleNamespace

from f0mesh.identity import Identity
from f0mesh.node import Node


def test_a_page_is_never_offered_as_a_relay() -> None:
    target, page, node = (Identity.generate().peer_id for _ in range(3))
    links = [SimpleNamespace(peer_id=page, browser=True), SimpleNamespace(peer_id=node, browser=False)]
    # both neighbours claim a link to the target; the page even names itself as its relay
    fake = SimpleNamespace(
        _peers={target: {"relays": [page]}},
        telemetry={page: {"links": [{"peer_id": target}]}, node: {"links": [{"peer_id": target}]}},
        links=SimpleNamespace(open_links=lambda: links),
    )
    assert Node.mesh_relays(fake, target) == [node]
