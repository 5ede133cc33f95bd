"""/api/state on a ReplicatedState with no links: shapes, errors in words, auth."""

from __future__ import annotations

from collections.abc import AsyncIterator
from types import SimpleNamespace

import httpx
import pytest
from fastapi import FastAPI

from f0mesh.api import errors
from f0mesh.api.auth import Sessions
from f0mesh.api.state import router
from f0mesh.state import MapChange

from .kit import Clock, MemoryStateStore, solo

TOKEN = "state-test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    clock = Clock()
    state = solo(MemoryStateStore(), clock, max_document_bytes=64 * 1024)
    await state.start()
    app = FastAPI()
    app.state.node = SimpleNamespace(state=state, admin_token=TOKEN)
    app.state.sessions = Sessions()
    errors.install(app)
    app.include_router(router)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://node") as c:
        c.state = state  # type: ignore[attr-defined]
        c.clock = clock  # type: ignore[attr-defined]
        yield c
    await state.stop()


async def test_put_replaces_and_get_reads_each_kind(client) -> None:
    r = await client.put(
        "/api/state/cfg", json={"kind": "map", "value": {"a": 1, "b": {"x": [1]}}}, headers=AUTH
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["name"] == "cfg" and body["kind"] == "map" and body["value"] == {"a": 1, "b": {"x": [1]}}
    assert list(body["version"].values()) == [2]
    r = await client.put("/api/state/cfg", json={"kind": "map", "value": {"a": 1, "c": None}}, headers=AUTH)
    assert r.json()["value"] == {"a": 1, "c": None}
    assert list(r.json()["version"].values()) == [4]  # "a" was unchanged: only c written and b deleted

    await client.put("/api/state/tags", json={"kind": "set", "value": ["x", 3, "x"]}, headers=AUTH)
    await client.put("/api/state/todo", json={"kind": "list", "value": ["one", {"two": 2}]}, headers=AUTH)
    assert (await client.get("/api/state/tags")).json()["value"] == [3, "x"]
    todo = (await client.get("/api/state/todo")).json()
    assert todo["value"] == ["one", {"two": 2}] and len(todo["ids"]) == 2

    listing = (await client.get("/api/state")).json()
    assert [(d["name"], d["kind"], d["size"]) for d in listing["documents"]] == [
        ("_policies", "map", 3),  # the write policy of each document created here
        ("_topics", "map", 0),  # the publish policies of topics
        ("cfg", "map", 2),
        ("peers", "map", 1),
        ("tags", "set", 2),
        ("todo", "list", 2),
    ]
    assert listing["dropped"] == {}


async def test_post_applies_operations(client) -> None:
    r = await client.post("/api/state/cfg", json={"kind": "map", "set": {"a": 1, "b": 2}}, headers=AUTH)
    assert r.json()["value"] == {"a": 1, "b": 2}
    r = await client.post(
        "/api/state/cfg", json={"kind": "map", "set": {"c": 3}, "delete": ["a"]}, headers=AUTH
    )
    assert r.json()["value"] == {"b": 2, "c": 3}

    r = await client.post(
        "/api/state/tags", json={"kind": "set", "add": ["x", "y"], "remove": ["y"]}, headers=AUTH
    )
    assert r.json()["value"] == ["x"]

    r = await client.post("/api/state/log", json={"kind": "list", "append": ["a", "c"]}, headers=AUTH)
    a, c = r.json()["inserted"]
    r = await client.post(
        "/api/state/log",
        json={
            "kind": "list",
            "insert": [{"after": a, "values": ["b1", "b2"]}, {"after": None, "values": [0]}],
        },
        headers=AUTH,
    )
    assert r.json()["value"] == [0, "a", "b1", "b2", "c"]
    r = await client.post("/api/state/log", json={"kind": "list", "delete": [a, c]}, headers=AUTH)
    assert r.json()["value"] == [0, "b1", "b2"]
    assert "inserted" not in r.json()


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "code", "words"),
    [
        ("put", "/api/state/cfg", {"kind": "set", "value": []}, 409, "kind_mismatch", "is a map"),
        ("post", "/api/state/cfg", {"kind": "list", "append": [1]}, 409, "kind_mismatch", "is a map"),
        ("put", "/api/state/bad%20name", {"kind": "map", "value": {}}, 422, "invalid", "name"),
        ("put", "/api/state/" + "n" * 65, {"kind": "map", "value": {}}, 422, "invalid", "name"),
        ("put", "/api/state/x", {"kind": "map", "value": [1]}, 422, "invalid", "JSON object"),
        ("put", "/api/state/x", {"kind": "set", "value": [1.5]}, 422, "invalid", "float"),
        ("put", "/api/state/x", {"kind": "tree", "value": []}, 422, "invalid", "kind"),
        ("post", "/api/state/x", {"kind": "map", "sett": {}}, 422, "invalid", "sett"),
        ("post", "/api/state/x", {"kind": "set", "add": [True]}, 422, "invalid", "add"),
        ("post", "/api/state/x", {"kind": "map", "set": {"k" * 300: 1}}, 422, "invalid", "set"),
        ("post", "/api/state/x", {"kind": "list", "delete": ["nope"]}, 422, "invalid", "element id"),
        (
            "post",
            "/api/state/x",
            {"kind": "list", "insert": [{"after": "9@zz", "values": [1]}]},
            422,
            "invalid",
            "anchor",
        ),
        ("put", "/api/state/peers", {"kind": "map", "value": {}}, 403, "reserved", "peer registry"),
        ("put", "/api/state/big", {"kind": "list", "value": ["x" * 70_000]}, 413, "too_large", "limit"),
    ],
)
async def test_bad_requests_are_refused_in_words_and_change_nothing(
    client, method, path, body, status, code, words
) -> None:
    await client.put("/api/state/cfg", json={"kind": "map", "value": {"a": 1}}, headers=AUTH)
    before = (await client.get("/api/state")).json()
    r = await getattr(client, method)(path, json=body, headers=AUTH)
    assert r.status_code == status, r.text
    assert r.json()["error"] == code and words in r.json()["detail"], r.json()
    assert (await client.get("/api/state")).json() == before


async def test_unknown_documents_are_404_and_writes_need_the_token(client) -> None:
    for path in ("/api/state/nope", "/api/state/nope/conflicts"):
        r = await client.get(path)
        assert r.status_code == 404 and r.json()["error"] == "not_found" and "nope" in r.json()["detail"]
    r = await client.put("/api/state/cfg", json={"kind": "map", "value": {}})
    assert r.status_code == 401
    r = await client.post("/api/state/cfg", json={"kind": "map"}, headers={"Authorization": "Bearer wrong"})
    assert r.status_code == 401
    assert (await client.get("/api/state/peers")).status_code == 200  # reading needs no token


async def test_conflicts_endpoint_lists_concurrent_writes_with_their_resolution(client) -> None:
    other = solo(MemoryStateStore(), client.clock)
    await other.start()
    await client.put("/api/state/cfg", json={"kind": "map", "value": {"color": "red"}}, headers=AUTH)
    r = await client.post("/api/state/cfg/writers", json={"add": [other.peer_id]}, headers=AUTH)
    assert r.status_code == 200 and other.peer_id in r.json()["writers"]
    client.clock.advance(0.5)
    await other.update("cfg", MapChange(set={"color": "blue"}))  # later, and unaware of "red"
    for payload in other._gossip.published:
        client.state.on_gossip(SimpleNamespace(origin=other.peer_id, payload=payload))
    await other.stop()

    assert (await client.get("/api/state/cfg")).json()["value"] == {"color": "blue"}
    body = (await client.get("/api/state/cfg/conflicts")).json()
    assert body["name"] == "cfg"
    [conflict] = body["conflicts"]
    assert conflict["key"] == "color" and conflict["kept"] == "blue" and conflict["discarded"] == "red"
    assert conflict["kept_origin"] == other.peer_id and conflict["discarded_origin"] == client.state.peer_id
    assert isinstance(conflict["kept_ts"], str) and conflict["kept_ts"] > conflict["discarded_ts"]
    assert conflict["kept_deleted"] is False and "last writer wins" in conflict["resolution"]


async def test_a_document_another_node_created_answers_403_until_its_creator_names_this_node(client) -> None:
    other = solo(MemoryStateStore(), client.clock)
    await other.start()
    await other.update("shared", MapChange(set={"a": 1}))
    for payload in other._gossip.published:  # the document and its write policy
        client.state.on_gossip(SimpleNamespace(origin=other.peer_id, payload=payload))
    body = (await client.get("/api/state/shared")).json()
    assert body["value"] == {"a": 1} and body["policy"]["creator"] == other.peer_id

    r = await client.put("/api/state/shared", json={"kind": "map", "value": {"a": 2}}, headers=AUTH)
    assert r.status_code == 403 and r.json()["error"] == "not_writer", r.text
    assert (await client.get("/api/state/shared")).json()["value"] == {"a": 1}  # nothing applied
    r = await client.post("/api/state/shared/writers", json={"add": [client.state.peer_id]}, headers=AUTH)
    assert r.status_code == 403, r.text  # only the creator's node changes the policy
    r = await client.post("/api/state/shared/writers", json={"add": ["not a peer id"]}, headers=AUTH)
    assert r.status_code == 422, r.text

    await other.set_writers("shared", [client.state.peer_id], [])
    for payload in other._gossip.published:
        client.state.on_gossip(SimpleNamespace(origin=other.peer_id, payload=payload))
    r = await client.put("/api/state/shared", json={"kind": "map", "value": {"a": 2}}, headers=AUTH)
    assert r.status_code == 200 and r.json()["value"] == {"a": 2}, r.text
    await other.stop()


async def test_the_resolution_is_chosen_when_a_write_creates_the_document(client) -> None:
    me = client.state.peer_id
    r = await client.put(
        "/api/state/votes", json={"kind": "map", "value": {"a": 1}, "resolution": "keep-all"}, headers=AUTH
    )
    assert r.status_code == 200 and r.json()["open"] == []
    assert (await client.get("/api/state/votes")).json()["policy"]["resolution"] == "keep-all"
    r = await client.post(
        "/api/state/votes", json={"kind": "map", "set": {"a": 2}, "resolution": "lww"}, headers=AUTH
    )
    assert r.status_code == 409 and r.json()["error"] == "resolution_mismatch"
    r = await client.post(
        "/api/state/rank",
        json={"kind": "map", "set": {"a": 1}, "resolution": "ranked", "rank": [me]},
        headers=AUTH,
    )
    assert r.status_code == 200 and r.json()["value"] == {"a": 1}
    r = await client.put(
        "/api/state/t", json={"kind": "set", "value": [], "resolution": "ranked", "rank": [me]}, headers=AUTH
    )
    assert r.status_code == 422 and r.json()["error"] == "bad_resolution"
    r = await client.put(
        "/api/state/t", json={"kind": "map", "value": {}, "resolution": "first"}, headers=AUTH
    )
    assert r.status_code == 422
    assert (await client.get("/api/state/t")).status_code == 404
