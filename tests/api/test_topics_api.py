"""The subscription and mesh endpoints on an in-process node."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from f0mesh.api.app import create_app
from f0mesh.config import NodeConfig
from f0mesh.errors import ConfigError
from f0mesh.node import Node

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
