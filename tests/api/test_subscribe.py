"""Topic streams, cursor paging and bytes payloads on an in-process node (issue 22)."""

from __future__ import annotations

import asyncio
import base64
import importlib
import pkgutil
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi.routing import APIRoute, APIRouter

import f0mesh.api
from f0mesh.api.app import create_app
from f0mesh.api.sse import EventStreamResponse
from f0mesh.api.subscribe import TopicFeed
from f0mesh.config import NodeConfig
from f0mesh.node import Node

TOKEN = "s3cret-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
async def client(tmp_path) -> AsyncIterator[httpx.AsyncClient]:
    node = Node(NodeConfig(data_dir=tmp_path, admin_token=TOKEN))
    await node.start()
    app = create_app(node, manage_node=False)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://node") as c:
        c.node = node  # type: ignore[attr-defined]
        yield c
    await node.stop()


async def publish(client: httpx.AsyncClient, topic: str, **body: object) -> str:
    r = await client.post("/api/gossip", json={"topic": topic, **body}, headers=AUTH)
    assert r.status_code == 200, r.text
    return r.json()["id"]


async def test_paging_with_since_visits_every_message_once_in_order(client) -> None:
    published = []
    for i in range(7):
        published.append(await publish(client, "news", payload={"i": i}))
        await publish(client, "other", payload=i)
    seen, cursor, pages = [], 0, 0
    while pages < 20:
        body = (
            await client.get("/api/gossip/messages", params={"topic": "news", "since": cursor, "limit": 3})
        ).json()
        pages += 1
        if not body["messages"]:
            assert body["next"] == cursor
            break
        ns = [m["n"] for m in body["messages"]]
        assert ns == sorted(ns) and ns[0] > cursor and body["next"] == ns[-1]
        seen += body["messages"]
        cursor = body["next"]
    assert [m["id"] for m in seen] == published
    assert [m["payload"] for m in seen] == [{"i": i} for i in range(7)]
    assert pages == 4  # 3 + 3 + 1, then the empty page that says "nothing newer"
    newest = (await client.get("/api/gossip/messages", params={"limit": 1})).json()
    assert newest["messages"][0]["topic"] == "other" and newest["next"] == newest["messages"][0]["n"]


async def test_bytes_payload_round_trips_as_b64(client) -> None:
    raw = bytes(range(256))
    message_id = await publish(client, "blobs", payload_b64=base64.b64encode(raw).decode())
    await publish(client, "blobs", payload=None)  # null is a JSON payload, not a missing one
    rows = (await client.get("/api/gossip/messages", params={"topic": "blobs", "since": 0})).json()[
        "messages"
    ]
    assert rows[0]["id"] == message_id and "payload" not in rows[0]
    assert base64.b64decode(rows[0]["payload_b64"]) == raw
    assert rows[1]["payload"] is None and "payload_b64" not in rows[1]


@pytest.mark.parametrize(
    "body",
    [
        {"topic": "t"},
        {"topic": "t", "payload": 1, "payload_b64": "AA=="},
        {"topic": "t", "payload_b64": "not base64!"},
        {"topic": "t", "payload_b64": "A" * 200_000},
    ],
)
async def test_bad_publish_bodies_are_422(client, body) -> None:
    r = await client.post("/api/gossip", json=body, headers=AUTH)
    assert r.status_code == 422 and r.json()["error"] == "invalid", r.text


async def test_oversized_bytes_payload_is_413(client) -> None:
    r = await client.post(
        "/api/gossip",
        json={"topic": "t", "payload_b64": base64.b64encode(b"x" * 65536).decode()},
        headers=AUTH,
    )
    assert r.status_code == 413 and r.json()["error"] == "too_large", r.text


async def test_openapi_marks_sse_routes_as_event_streams(client) -> None:
    spec = (await client.get("/openapi.json")).json()
    ok = spec["paths"]["/api/gossip/subscribe"]["get"]["responses"]["200"]["content"]
    assert list(ok) == ["text/event-stream"]
    assert "id: 42" in ok["text/event-stream"]["example"]
    events = spec["paths"]["/api/events"]["get"]["responses"]["200"]["content"]
    assert list(events) == ["text/event-stream"] and "event: member" in events["text/event-stream"]["example"]
    publish_doc = spec["paths"]["/api/gossip"]["post"]["description"]
    assert "65536 bytes" in publish_doc and "payload_b64" in publish_doc
    streams = [r for r in api_routes() if r.response_class is EventStreamResponse]
    assert {r.path for r in streams} == {"/api/events", "/api/gossip/subscribe"}
    for route in streams:
        assert list(spec["paths"][route.path]["get"]["responses"]["200"]["content"]) == ["text/event-stream"]


def api_routes() -> list[APIRoute]:
    """Every route of the API's routers, as declared (the app holds them behind included routers)."""
    names = [m.name for m in pkgutil.iter_modules(f0mesh.api.__path__)]
    modules = [importlib.import_module(f"f0mesh.api.{name}") for name in names]
    routers = [m.router for m in modules if isinstance(getattr(m, "router", None), APIRouter)]
    return [route for router in routers for route in router.routes if isinstance(route, APIRoute)]


# the routes issue 22 added, and the state routes with the resolution fields
APPLICATION_ROUTES = [
    ("post", "/api/direct"),
    ("post", "/api/query"),
    ("get", "/api/gossip/subscribe"),
    ("get", "/api/gossip/subscriptions"),
    ("post", "/api/gossip/subscriptions"),
    ("delete", "/api/gossip/subscriptions/{topic}"),
    ("get", "/api/gossip/mesh"),
    ("get", "/api/state/{name}"),
    ("put", "/api/state/{name}"),
    ("post", "/api/state/{name}"),
    ("post", "/api/state/{name}/writers"),
    ("get", "/api/state/{name}/conflicts"),
]


async def test_openapi_gives_each_application_route_a_summary_and_examples(client) -> None:
    spec = (await client.get("/openapi.json")).json()
    # a summary given, not the one FastAPI makes of the function's name
    summaries = {
        (method.lower(), route.path.replace(":path", "")): route.summary
        for route in api_routes()
        for method in route.methods
    }
    for method, path in APPLICATION_ROUTES:
        operation = spec["paths"][path][method]
        assert summaries[(method, path)] and operation["summary"] == summaries[(method, path)], path
        (media,) = operation["responses"]["200"]["content"].values()
        assert media.get("example"), (method, path)
        if "requestBody" in operation:
            assert operation["requestBody"]["content"]["application/json"].get("examples"), (method, path)
    put = spec["paths"]["/api/state/{name}"]["put"]["requestBody"]["content"]["application/json"]["examples"]
    assert {e["value"].get("resolution") for e in put.values()} >= {"ranked", "keep-all"}
    document = spec["paths"]["/api/state/{name}"]["get"]["responses"]["200"]["content"]["application/json"]
    assert document["example"]["policy"]["resolution"] == "ranked"
    conflicts = spec["paths"]["/api/state/{name}/conflicts"]["get"]["responses"]["200"]["content"]
    assert conflicts["application/json"]["example"]["conflicts"][0]["open"] is True


async def test_feed_resumes_from_the_store_and_continues_live_without_gap_or_repeat(client) -> None:
    node = client.node
    first = [await node.publish("feed", i) for i in range(5)]
    rows = (await client.get("/api/gossip/messages", params={"topic": "feed", "since": 0})).json()["messages"]
    resume_at = rows[1]["n"]  # the consumer had seen two, then lost its connection
    got: list[str] = []
    async with TopicFeed(node.store, node.gossip.subscribe, "feed", resume_at, page=2) as feed:
        later = [await node.publish("feed", i) for i in range(5, 8)]
        for _ in range(20):
            events = await feed.next_events(timeout=2.0)
            if not events:
                break
            got += [data["id"] for name, data, _ in events if name == "message"]
        live = await node.publish("feed", 8)
        events = await feed.next_events(timeout=10.0) or await feed.next_events(timeout=10.0)
        got += [data["id"] for name, data, _ in events]
    assert got == first[2:] + later + [live]


async def test_live_only_feed_starts_after_what_is_stored(client) -> None:
    node = client.node
    await node.publish("feed", "old")
    async with TopicFeed(node.store, node.gossip.subscribe, "feed", None) as feed:
        assert await feed.next_events(timeout=0.2) == []
        new = await node.publish("feed", "new")
        events = await feed.next_events(timeout=10.0) or await feed.next_events(timeout=10.0)
    assert [(name, data["id"]) for name, data, _ in events] == [("message", new)]


async def test_slow_consumer_is_told_what_it_missed_and_can_fetch_it(client) -> None:
    node = client.node
    async with TopicFeed(node.store, node.gossip.subscribe, "fast", None, max_backlog=5) as feed:
        start = feed.last
        missed = [await node.publish("fast", i) for i in range(12)]  # the consumer reads none of them
        await node.publish("elsewhere", "not counted")
        name, data, event_id = (await feed.next_events(timeout=1.0))[0]
        assert (name, data["dropped"], data["after"], event_id) == ("dropped", 12, start, None)
        after = await node.publish("fast", "after the gap")
        events = await feed.next_events(timeout=10.0) or await feed.next_events(timeout=10.0)
        assert [d["id"] for _, d, _ in events] == [after]
    gap = (
        await client.get(
            "/api/gossip/messages", params={"topic": "fast", "since": data["after"], "limit": 100}
        )
    ).json()["messages"]
    assert [m["id"] for m in gap if m["n"] <= data["upto"]] == missed


async def test_topic_streams_share_the_event_stream_slots_and_cursors_are_bounded(client) -> None:
    await client.get("/healthz")
    slots = client._transport.app.state.event_slots  # type: ignore[attr-defined]
    held = [slots.take("admin", admin=True) for _ in range(slots.admin)]  # e.g. /api/events streams
    held += [slots.take(f"client-{i}", admin=False) for i in range(slots.anonymous)]
    r = await asyncio.wait_for(client.get("/api/gossip/subscribe", params={"topic": "news"}), 10)
    assert r.status_code == 429 and r.json()["error"] == "rate_limited", r.text
    for release in held:
        release()
    for cursor in ("x", "-1", str(2**63)):
        bad = await client.get(
            "/api/gossip/subscribe", params={"topic": "news"}, headers={"Last-Event-ID": cursor}
        )
        assert bad.status_code == 422, cursor
        bad = await client.get("/api/gossip/subscribe", params={"topic": "news", "since": cursor})
        assert bad.status_code == 422, cursor
        bad = await client.get("/api/gossip/messages", params={"since": cursor})
        assert bad.status_code == 422, cursor
    far = await client.get("/api/gossip/messages", params={"since": 2**63 - 1})
    assert far.status_code == 200 and far.json() == {"messages": [], "next": 2**63 - 1}


@pytest.fixture
async def narrow(tmp_path) -> AsyncIterator[httpx.AsyncClient]:
    """A node that carries only ``news`` (and the system topics)."""
    node = Node(NodeConfig(data_dir=tmp_path, admin_token=TOKEN, topics=["news"]))
    await node.start()
    app = create_app(node, manage_node=False)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://node") as c:
        c.node = node  # type: ignore[attr-defined]
        yield c
    await node.stop()


async def open_stream(client: httpx.AsyncClient, topic: str, headers: dict[str, str]) -> tuple[int, bytes]:
    """GET /api/gossip/subscribe on the ASGI app itself (httpx's ASGI transport waits for the whole
    body, which a stream never ends): the status and the first body bytes, then a disconnect."""
    app = client._transport.app  # type: ignore[attr-defined]
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
        "scheme": "http", "path": "/api/gossip/subscribe", "raw_path": b"/api/gossip/subscribe",
        "query_string": f"topic={topic}".encode(), "root_path": "", "server": ("node", 80),
        "client": ("127.0.0.1", 50000),
        "headers": [(k.lower().encode(), v.encode()) for k, v in {"host": "node", **headers}.items()],
    }  # fmt: skip
    sent: asyncio.Queue[dict] = asyncio.Queue()
    gone = asyncio.Event()
    asked = False

    async def receive() -> dict:
        nonlocal asked
        if not asked:
            asked = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await gone.wait()
        return {"type": "http.disconnect"}

    app_task = asyncio.create_task(app(scope, receive, sent.put))
    try:
        start = await asyncio.wait_for(sent.get(), 10)
        body = b""
        while not body:
            body = (await asyncio.wait_for(sent.get(), 10)).get("body", b"")
    finally:
        gone.set()
        await asyncio.wait_for(app_task, 10)
    return start["status"], body


async def test_anonymous_streams_only_topics_the_node_carries(narrow) -> None:
    await narrow.get("/healthz")
    refused = await asyncio.wait_for(narrow.get("/api/gossip/subscribe", params={"topic": "sports"}), 10)
    assert refused.status_code == 403, refused.text
    assert refused.json()["error"] == "not_subscribed" and "admin token" in refused.json()["detail"]
    assert "sports" not in narrow.node.topics.subscriptions()["topics"]
    for topic in ("news", "telemetry"):  # named, and a system topic
        status, body = await open_stream(narrow, topic, {})
        assert (status, body) == (200, b": connected\n\n"), topic
    slots = narrow._transport.app.state.event_slots  # type: ignore[attr-defined]
    assert slots.anonymous_held == 0 and slots.admin_held == 0  # every stream let its slot go


async def test_an_admin_stream_joins_a_new_topic(narrow) -> None:
    node = narrow.node
    sent: list[dict] = []
    # one neighbour, which records what the engine tells it
    node.gossip._transport.neighbours = lambda: ["12D3KooWneighbour"]  # type: ignore[method-assign]

    async def record(peer: str, message: dict) -> None:
        sent.append({"to": peer, **message})

    node.gossip._transport.send = record  # type: ignore[method-assign]
    status, _ = await open_stream(narrow, "sports", AUTH)
    assert status == 200
    assert node.topics.subscriptions()["topics"] == ["news", "sports"]
    # the announcement (an empty IHAVE with the subscriptions); a repair round may have sent more since
    announced = [m for m in sent if "subs" in m]
    assert announced and "sports" in announced[-1]["subs"] and announced[-1]["ids"] == [], sent
    status, _ = await open_stream(narrow, "sports", {})  # now carried: anonymous clients may read it
    assert status == 200


async def test_node_subscribe_joins_the_topic(narrow) -> None:
    node = narrow.node
    messages = node.subscribe("sports")
    first = asyncio.create_task(anext(messages))
    for _ in range(100):
        if node.topics.carries("sports"):
            break
        await asyncio.sleep(0.01)
    assert node.topics.subscriptions()["topics"] == ["news", "sports"]
    sent = await node.publish("sports", {"score": 1})
    assert (await asyncio.wait_for(first, 10))["id"] == sent
    await messages.aclose()
    with pytest.raises(ValueError):
        await anext(node.subscribe("bad topic!"))
