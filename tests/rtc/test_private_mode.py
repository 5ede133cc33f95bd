"""Private nodes (issue 23): no inbound HTTP offers, dialled by PeerId through a relay over ``ctl``."""

from __future__ import annotations

import pytest

from f0mesh.config import NodeConfig
from f0mesh.errors import ConfigError

from nodes import NodeProcess, start_all, wait_for


def _knows(node: NodeProcess, peer_id: str) -> bool:
    return any(p["peer_id"] == peer_id for p in node.http.get("/api/peers").json()["peers"])


def _private_pair(node_factory) -> tuple[NodeProcess, NodeProcess, NodeProcess]:
    b = node_factory("b")
    x, y = node_factory.many("x", "y", extra=["--no-public-url", "--bootstrap", b.url])
    for node in (x, y):
        wait_for(
            lambda n=node: n.link_to(b.peer_id) and n.link_to(b.peer_id)["state"] == "open",
            30,
            what="bootstrap link",
        )
    wait_for(lambda: _knows(x, y.peer_id), 30, what="X learns Y from the mesh")
    return b, x, y


def test_private_nodes_link_through_the_mesh_and_refuse_http_offers(node_factory) -> None:
    b, x, y = _private_pair(node_factory)
    assert x.http.get("/healthz").json()["private"] is True

    refused = y.http.post("/offer", json={"type": "offer"})
    assert refused.status_code == 403 and refused.json()["error"] == "private_node", refused.text
    relayed = b.http.post("/api/mesh-rtc/offer", json={"type": "offer"})
    assert relayed.status_code == 400  # the public relay still parses offers

    r = x.http.post("/api/mesh-rtc/dial", json={"peer_id": y.peer_id})
    assert r.status_code == 200, r.text
    assert r.json()["state"] == "open"
    out, into = x.link_to(y.peer_id), y.link_to(x.peer_id)
    assert out["signaling"] == "mesh" and out["direction"] == "out", out
    assert into["signaling"] == "mesh" and into["direction"] == "in", into
    assert out["path"] in ("host", "srflx", "prflx"), out
    assert x.link_to(b.peer_id)["signaling"] == "http"
    metrics = x.http.get("/metrics").text
    assert f'f0mesh_links_opened_total{{path="{out["path"]}",signaling="mesh"}} 1.0' in metrics

    # Cut the bootstrap links: what Y receives now came over the direct link.
    assert x.http.delete(f"/api/mesh-rtc/links/{b.peer_id}").status_code == 200
    assert y.http.delete(f"/api/mesh-rtc/links/{b.peer_id}").status_code == 200
    published = x.http.post("/api/gossip", json={"topic": "direct", "payload": {"n": 1}})
    assert published.status_code == 200, published.text

    def arrived() -> bool:
        rows = y.http.get("/api/gossip/messages", params={"topic": "direct"}).json()["messages"]
        return any(m["origin"] == x.peer_id for m in rows)

    wait_for(arrived, 20, what="gossip X -> Y over the relayed-signaled link")


def test_dial_by_peer_id_without_relay_or_url_is_404(node_factory) -> None:
    b = node_factory("b", start=False)
    x = node_factory("x", extra=["--no-public-url"], start=False)
    start_all([b, x])
    r = x.http.post("/dial", json={"peer_id": b.peer_id})
    assert r.status_code == 404 and r.json()["error"] == "not_found", r.text
    both = x.http.post("/api/mesh-rtc/dial", json={"peer_id": b.peer_id, "to": b.peer_id})
    assert both.status_code in (400, 422), both.text
    # a peer that learns a private node from its URL does not send it HTTP offers
    assert b.http.post("/api/peers", json={"url": x.url}).status_code == 200
    unreachable = b.http.post("/dial", json={"peer_id": x.peer_id})
    assert unreachable.status_code == 404 and "no relay" in unreachable.json()["detail"], unreachable.text
    # a private node still dials out by URL
    assert x.dial(b).status_code == 200
    wait_for(lambda: b.link_to(x.peer_id) and b.link_to(x.peer_id)["state"] == "open", 10, what="b sees x")


def test_private_mode_and_a_public_url_exclude_each_other(tmp_path) -> None:
    with pytest.raises(ConfigError, match="exclude each other"):
        NodeConfig(data_dir=tmp_path, no_public_url=True, public_url="http://example.test:8700")
    assert NodeConfig(data_dir=tmp_path, no_public_url=True).no_public_url
