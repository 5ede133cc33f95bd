"""The subscription and mesh endpoints on an in-process node."""

from __future__ import annotations

from collections.abc import AsyncIterator
from types import SimpleNamespace

import httpx
import pytest

from f0mesh.api.app import create_app
from f0mesh.config import NodeConfig
from f0mesh.crdt import HLC, LWWMap
from f0mesh.errors import ConfigError
from f0mesh.identity import Identity
from f0mesh.node import Node
from f0mesh.peer_record import PeerRecord
from f0mesh.state.policy import Policy
from f0mesh.state.sync import gossip_payload
from f0mesh.state.topic_policy import topic_entry

TOKEN = "s3cret-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
SYSTEM = ["state", "state/signed", "telemetry", "trust"]


@pytest.fixture
async def client(tmp_path) -> AsyncIterator[httpx.AsyncClient]:
    node = Node(NodeConfig(data_dir=tmp_path, admin_token=TOKEN, topics=["news"]))
    await node.start()
    app = create_app(node, manage_node=False)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://node") as c:
        c.node = node  # type: ignore[attr-defined]
        yield c
    await node.stop()


async def test_subscriptions_are_listed_changed_by_the_admin_and_refused_in_words(client) -> None:
    expected = {"topics": ["news"], "system": SYSTEM, "neighbours": {}}
    assert (await client.get("/api/gossip/subscriptions")).json() == expected
    r = await client.post("/api/gossip/subscriptions", json={"topic": "a/b"})
    assert r.status_code == 401
    r = await client.post("/api/gossip/subscriptions", json={"topic": "a/b"}, headers=AUTH)
    assert r.status_code == 200 and r.json()["topics"] == ["a/b", "news"]
    for bad in ("", "no spaces", "x" * 129, "**"):
        r = await client.post("/api/gossip/subscriptions", json={"topic": bad}, headers=AUTH)
        assert r.status_code == 422 and r.json()["error"], bad
    r = await client.delete("/api/gossip/subscriptions/a/b", headers=AUTH)
    assert r.status_code == 200 and r.json()["topics"] == ["news"]
    r = await client.delete("/api/gossip/subscriptions/a/b", headers=AUTH)
    assert r.status_code == 404 and r.json()["error"] == "not_found"
    r = await client.delete("/api/gossip/subscriptions/trust", headers=AUTH)
    assert r.status_code == 409 and r.json()["error"] == "system_topic"
    for n in range(255):  # news + 255 = the cap of 256
        r = await client.post("/api/gossip/subscriptions", json={"topic": f"t{n}"}, headers=AUTH)
        assert r.status_code == 200
    r = await client.post("/api/gossip/subscriptions", json={"topic": "one-more"}, headers=AUTH)
    assert r.status_code == 409 and r.json()["error"] == "too_many_topics"


async def test_own_messages_are_stored_whatever_the_topic_and_the_mesh_is_listed(client) -> None:
    r = await client.post("/api/gossip", json={"topic": "sports", "payload": 1}, headers=AUTH)
    assert r.status_code == 200
    rows = (await client.get("/api/gossip/messages", params={"topic": "sports"})).json()["messages"]
    assert [m["id"] for m in rows] == [r.json()["id"]]
    client.node.gossip.mesh.maintain()  # as the heartbeat does: a mesh for each topic named
    body = (await client.get("/api/gossip/mesh")).json()
    assert body == {topic: {"peers": []} for topic in ["news", *SYSTEM]}  # no links yet


def test_bad_topic_flags_are_refused_at_start(tmp_path) -> None:
    with pytest.raises(ConfigError, match="--topic"):
        NodeConfig(data_dir=tmp_path, topics=["no spaces"])


async def test_a_topic_policy_is_set_by_the_admin_and_a_publish_it_does_not_name_gets_403(client) -> None:
    node, other, third = client.node, Identity.generate(), Identity.generate()
    url = "/api/gossip/topics/prices/live/policy"
    body = {"publishers": [other.peer_id]}
    assert (await client.post(url, json=body)).status_code == 401
    r = await client.post(url, json=body, headers=AUTH)
    assert r.status_code == 200, r.text
    assert r.json()["publishers"] == sorted([node.peer_id, other.peer_id])
    assert (await client.get("/api/gossip/policies")).json()["policies"] == [r.json()]
    for bad in ({"publishers": ["not-a-peer"]}, {"publishers": [other.peer_id] * 65}, {}):
        r = await client.post(url, json=bad, headers=AUTH)
        assert r.status_code == 422 and r.json()["error"], bad
    r = await client.post("/api/gossip/topics/trust/policy", json=body, headers=AUTH)
    assert r.status_code == 409 and r.json()["error"] == "system_topic"

    # another creator's policy won "quotes" (as if it had arrived from the mesh): this node may not publish
    theirs = Policy("quotes", other.peer_id, (1, 0), frozenset({other.peer_id, third.peer_id}))
    claim = LWWMap(other.peer_id)
    claim.set(("quotes", other.peer_id), topic_entry(theirs), HLC(other.peer_id).now())
    claim.sign_ops(other.peer_id, "map/_topics", other.sign)
    delivered = SimpleNamespace(origin="x", payload=gossip_payload("_topics", "map", claim.to_bytes()))
    node.state.on_gossip(delivered)
    r = await client.post("/api/gossip", json={"topic": "quotes", "payload": 1}, headers=AUTH)
    assert r.status_code == 403 and r.json()["error"] == "not_publisher"
    r = await client.post("/api/gossip/topics/quotes/policy", json=body, headers=AUTH)
    assert r.status_code == 403 and r.json()["error"]
    r = await client.post("/api/gossip", json={"topic": "prices/live", "payload": 1}, headers=AUTH)
    assert r.status_code == 200


async def test_the_record_names_the_topics_and_peers_show_theirs(client) -> None:
    node = client.node
    assert node.pex.own_record().topics == ("news",)  # system topics are implied, not listed
    other = PeerRecord.create(Identity.generate(), "http://127.0.0.1:9", tags={"role": "db"}, topics=["a"])
    node.state.peer_seen(other)  # as peer exchange or the registry would hand it over
    await node.state.flush()
    [row] = [p for p in (await client.get("/api/peers")).json()["peers"] if p["peer_id"] == other.peer_id]
    assert (row["tags"], row["topics"]) == ({"role": "db"}, ["a"])
