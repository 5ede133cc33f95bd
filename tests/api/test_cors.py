"""The API's CORS policy (api/browser.py) on a bare ASGI app: no node, no processes."""

from __future__ import annotations

import httpx
import pytest
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

from f0mesh.api.browser import CorsMiddleware, check_origins
from f0mesh.errors import ConfigError

ALLOWED = "https://app.example"


async def ok(request) -> JSONResponse:
    return JSONResponse({"ok": True})


def client() -> httpx.AsyncClient:
    app = Starlette(routes=[Route(p, ok, methods=["GET", "POST"]) for p in ("/offer", "/api/peers")])
    wrapped = CorsMiddleware(app, [ALLOWED])
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=wrapped), base_url="http://node")


async def test_open_paths_answer_any_origin_and_the_rest_only_the_allow_list() -> None:
    async with client() as http:
        offer = await http.post("/offer", json={}, headers={"Origin": "https://evil.example"})
        assert offer.headers["access-control-allow-origin"] == "*"
        for origin, expected in (("https://evil.example", None), (ALLOWED, ALLOWED)):
            got = await http.get("/api/peers", headers={"Origin": origin})
            assert got.status_code == 200 and got.headers.get("access-control-allow-origin") == expected
        allowed = await http.get("/api/peers", headers={"Origin": ALLOWED})
        assert allowed.headers["vary"] == "Origin"
        assert "access-control-allow-credentials" not in allowed.headers  # a token, never a cookie
        same_origin = await http.get("/api/peers")
        assert "access-control-allow-origin" not in same_origin.headers
        preflight = {"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"}
        refused = await http.options("/api/peers", headers=preflight)
        assert refused.status_code == 403 and refused.json()["error"] == "cors_refused"
        opened = await http.options("/offer", headers=preflight)
        assert opened.status_code == 204 and "content-type" in opened.headers["access-control-allow-headers"]


@pytest.mark.parametrize("origin", ["*", "app.example", "https://app.example/path", "ftp://x"])
def test_an_origin_that_is_not_one_is_a_config_error(origin: str) -> None:
    with pytest.raises(ConfigError):
        check_origins([origin])
