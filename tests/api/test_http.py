"""HTTP conventions on an in-process node: errors, auth, body cap, limits, OpenAPI, metrics."""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator
from types import ModuleType
from typing import Any

import httpx
import pytest
from fastapi import APIRouter, Depends, FastAPI
from fastapi.routing import APIRoute
from pydantic import TypeAdapter

from f0mesh import api
from f0mesh.api.app import create_app
from f0mesh.api.auth import admin_operations, require_admin
from f0mesh.config import NodeConfig
from f0mesh.node import Node

TOKEN = "s3cret-token"


@pytest.fixture
async def client(tmp_path) -> AsyncIterator[httpx.AsyncClient]:
    node = Node(NodeConfig(data_dir=tmp_path, admin_token=TOKEN, max_body_bytes=1024))
    await node.start()
    app = create_app(node, manage_node=False)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://node") as c:
        c.node = node  # type: ignore[attr-defined]
        yield c
    await node.stop()


async def test_healthz(client) -> None:
    body = (await client.get("/healthz")).json()
    assert body["status"] == "ok" and body["peer_id"] == client.node.peer_id and body["links"] == 0
    assert body["version"]


async def test_admin_token_required(client) -> None:
    for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic abc"}):
        r = await client.post("/api/peers", json={"url": "http://127.0.0.1:1"}, headers=headers)
        assert r.status_code == 401, r.text
        assert r.json()["error"] == "unauthorized" and r.json()["detail"]
    assert (await client.get("/api/peers")).json() == {"peers": []}


async def test_oversized_body_is_413_before_reading(client) -> None:
    r = await client.post("/offer", content=b"x" * 5000, headers={"content-type": "application/json"})
    assert r.status_code == 413 and r.json()["error"] == "too_large"

    async def chunks():
        for _ in range(10):
            yield b"y" * 512

    r = await client.post("/offer", content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413


async def test_validation_errors_are_422_in_words(client) -> None:
    auth = {"Authorization": f"Bearer {TOKEN}"}
    r = await client.post("/dial", json={"url": "http://x", "peer_id": "12D3"}, headers=auth)
    assert r.status_code == 422 and r.json()["error"] == "invalid"
    r = await client.post("/dial", json={}, headers=auth)
    assert r.status_code == 422 and "exactly one" in r.json()["detail"]
    for limit in (0, 10001, "many"):
        r = await client.get(f"/api/peers?limit={limit}")
        assert r.status_code == 422, limit


async def test_unreachable_peer_is_502_and_policy_refusals_403(client) -> None:
    auth = {"Authorization": f"Bearer {TOKEN}"}
    r = await client.post("/api/peers", json={"url": "http://127.0.0.1:1"}, headers=auth)
    # a refused connection is known at once: not a timeout
    assert r.status_code == 502 and r.json()["error"] == "peer_unreachable", r.text
    assert "Connection refused" in r.json()["detail"]
    refused = ("http://169.254.169.254/latest", "http://[::a9fe:a9fe]/", "http://[64:ff9b::a9fe:a9fe]/")
    for url in (*refused, "file:///etc/passwd", "gopher://127.0.0.1/"):
        r = await client.post("/api/peers", json={"url": url}, headers=auth)
        assert r.status_code == 403, (url, r.text)
    assert (await client.get("/api/peers")).json() == {"peers": []}


async def test_requests_build_no_validator(client, monkeypatch) -> None:
    """A route's parameter and response validators are built once, when its module defines it, and
    no request builds the OpenAPI schema: include_router's copies would build them all again on the
    first request and keep both, and the schema holds more (issue #25: ~3 MB of a node's RSS)."""
    built: list[Any] = []
    build = TypeAdapter.__init__

    def counted(self: TypeAdapter[Any], *args: Any, **kwargs: Any) -> None:
        built.append(args[0] if args else kwargs)
        build(self, *args, **kwargs)

    monkeypatch.setattr(TypeAdapter, "__init__", counted)
    auth = {"Authorization": f"Bearer {TOKEN}"}
    assert (await client.get("/healthz")).status_code == 200
    assert (await client.get("/api/peers", params={"limit": 5}, headers=auth)).status_code == 200
    assert (await client.get("/api/state/nope", headers=auth)).status_code == 404
    assert built == []


def test_the_admin_guard_and_openapi_mark_the_same_operations(tmp_path) -> None:
    app = create_app(Node(NodeConfig(data_dir=tmp_path, admin_token=TOKEN)), manage_node=False)
    guarded = admin_operations(app.routes)
    paths = app.openapi()["paths"]
    marked = 0
    for route in app.routes:
        if isinstance(route, APIRoute) and route.include_in_schema:
            for method in route.methods:
                in_openapi = bool(paths[route.path_format][method.lower()].get("security"))
                assert ((method, route.path_regex) in guarded) == in_openapi, (method, route.path)
                marked += in_openapi
    assert marked > 10 and len(guarded) == marked  # and no hidden route needs the token


def test_the_admin_guard_fails_closed_on_routes_it_cannot_read() -> None:
    """An included router or a mounted app hides its operations from the guard: refused, not open."""
    router = APIRouter()

    @router.post("/api/secret")
    async def secret(_: None = Depends(require_admin)) -> None:
        return None

    app = FastAPI()
    app.include_router(router)
    with pytest.raises(TypeError, match="admin token"):
        admin_operations(app.routes)
    app = FastAPI()
    app.mount("/sub", FastAPI())
    with pytest.raises(TypeError, match="admin token"):
        admin_operations(app.routes)


async def test_openapi_marks_admin_operations(client) -> None:
    spec = (await client.get("/openapi.json")).json()
    assert "admin" in spec["components"]["securitySchemes"]
    assert spec["paths"]["/dial"]["post"].get("security") == [{"admin": []}]
    assert spec["paths"]["/api/peers"]["post"].get("security") == [{"admin": []}]
    assert "security" not in spec["paths"]["/healthz"]["get"]
    assert (await client.get("/docs")).status_code == 200


async def test_metrics_exposed(client) -> None:
    text = (await client.get("/metrics")).text
    assert "f0mesh_links_open" in text and client.node.peer_id in text


async def test_refusals_are_counted_by_status_and_code(client) -> None:
    for _ in range(3):
        assert (await client.post("/api/peers", json={"url": "http://127.0.0.1:1"})).status_code == 401
    auth = {"Authorization": f"Bearer {TOKEN}"}
    assert (await client.post("/dial", json={}, headers=auth)).status_code == 422
    assert (await client.get("/api/nothing-here")).status_code == 404
    text = (await client.get("/metrics")).text
    assert 'f0mesh_http_errors_total{code="unauthorized",status="401"} 3.0' in text
    assert 'f0mesh_http_errors_total{code="invalid",status="422"} 1.0' in text
    assert 'f0mesh_http_errors_total{code="not_found",status="404"} 1.0' in text


async def test_login_sets_session_and_csrf_is_enforced(client) -> None:
    r = await client.get("/login", params={"token": "wrong"})
    assert r.status_code == 401
    r = await client.get("/login", params={"token": TOKEN})
    assert r.status_code == 303
    assert (
        "httponly" in r.headers["set-cookie"].lower() and "samesite=strict" in r.headers["set-cookie"].lower()
    )
    cookies = dict(r.cookies)
    client.cookies.update(cookies)
    r = await client.post("/api/peers", json={"url": "http://127.0.0.1:1"})
    assert r.status_code == 403 and r.json()["error"] == "csrf"
    r = await client.post(
        "/api/peers", json={"url": "http://127.0.0.1:1"}, headers={"x-csrf-token": cookies["f0mesh_csrf"]}
    )
    assert r.status_code == 502  # authorised; the peer itself is unreachable


async def test_admin_check_comes_before_body_parsing(client) -> None:
    for method, path in (("POST", "/dial"), ("POST", "/api/gossip"), ("PUT", "/api/trust/" + "1" * 52)):
        r = await client.request(
            method, path, content=b"{not json", headers={"content-type": "application/json"}
        )
        assert r.status_code == 401, (path, r.text)


async def test_private_read_closes_the_read_api(tmp_path) -> None:
    node = Node(NodeConfig(data_dir=tmp_path, admin_token=TOKEN, open_read=False))
    await node.start()
    app = create_app(node, manage_node=False)
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://node") as c:
            for path in ("/api/peers", "/api/mesh-rtc/links", "/api/trust", "/metrics", "/openapi.json"):
                assert (await c.get(path)).status_code == 401, path
                assert (await c.get(path, headers={"Authorization": f"Bearer {TOKEN}"})).status_code == 200, (
                    path
                )
            assert (await c.get("/healthz")).status_code == 200
            assert (await c.get("/")).status_code == 200
    finally:
        await node.stop()


def test_no_endpoint_or_dependency_runs_in_the_threadpool(tmp_path) -> None:
    """FastAPI runs a plain ``def`` endpoint or dependency in anyio's worker threads: a thread hop on
    every request, and a thread started by the first. All the API does per request is quick and never
    blocks (the store has its own threads), so every endpoint and dependency is a coroutine."""
    app = create_app(Node(NodeConfig(data_dir=tmp_path, admin_token=TOKEN)), manage_node=False)
    found: set[str] = set()

    def walk(dependant: Any, path: str) -> None:
        for dep in dependant.dependencies:
            call = dep.call
            if not inspect.iscoroutinefunction(call if inspect.isroutine(call) else type(call).__call__):
                found.add(f"{path}: {getattr(call, '__name__', call)}")
            walk(dep, path)

    # the routers create_app includes, each read from its module's own ``router``
    modules = [module for module in vars(api).values() if isinstance(module, ModuleType)]
    routers = [getattr(module, "router", None) for module in modules]
    routes = [route for router in routers if isinstance(router, APIRouter) for route in router.routes]
    routes += [route for route in app.routes if isinstance(route, APIRoute)]
    assert len(routes) > 30 and any(route.path == "/healthz" for route in routes)
    for route in routes:
        if not isinstance(route, APIRoute):
            continue
        if not inspect.iscoroutinefunction(route.dependant.call):
            found.add(route.path)
        walk(route.dependant, route.path)
    assert not found, sorted(found)
