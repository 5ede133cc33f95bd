"""The browser peer's routes and the API's CORS policy.

``GET /f0peer.js`` serves the ES module a page joins the mesh with (``F0Peer.join``),
``/f0peer/<part>.js`` the parts it imports and ``/f0peer/vendor/...`` the msgpack codec. A page
on any site may load it and link to this node: the module, ``/healthz``, ``/offer`` and
``/answer`` answer every origin, because the signed offer is the authentication there and nothing
else is exposed. Every other route answers cross-origin only the origins named by
``--cors-origin`` (none by default), so an operator's token or session never works from a
foreign page.
"""

from __future__ import annotations

import re
from typing import Any

from fastapi import APIRouter, Path
from fastapi.responses import FileResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from f0mesh.dashboard import STATIC_DIR
from f0mesh.errors import ConfigError, NotFoundError

router = APIRouter()

VENDOR_DIR = STATIC_DIR / "vendor"
PARTS_DIR = STATIC_DIR / "f0peer"
_MODULE_TYPE = "application/javascript"
OPEN_PATHS = frozenset({"/f0peer.js", "/healthz", "/offer", "/answer"})
OPEN_PREFIX = "/f0peer/"
_ORIGIN = re.compile(r"^https?://[A-Za-z0-9.\-\[\]:]+$")
PREFLIGHT_MAX_AGE = "600"

_REFUSED = b'{"error":"cors_refused","detail":"this origin may not call this route (see --cors-origin)"}'


def _module(path: Any) -> FileResponse:
    # no-cache: revalidated (ETag), so a page never runs a module older than its node
    return FileResponse(
        path,
        media_type=_MODULE_TYPE,
        headers={"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"},
    )


@router.get("/f0peer.js", include_in_schema=False)
async def f0peer() -> FileResponse:
    return _module(STATIC_DIR / "f0peer.js")


@router.get(OPEN_PREFIX + "{name}.js", include_in_schema=False)
async def part(name: str = Path(max_length=32, pattern=r"^[a-z_]+$")) -> FileResponse:
    """The module's own parts, which it imports (documents.js)."""
    path = PARTS_DIR / f"{name}.js"
    if not path.is_file():
        raise NotFoundError(f"no part {name}.js of f0peer.js")
    return _module(path)


@router.get(OPEN_PREFIX + "vendor/{package}/{name:path}", include_in_schema=False)
async def vendored(
    package: str = Path(max_length=32, pattern=r"^[a-z0-9-]+$"),
    name: str = Path(max_length=64, pattern=r"^(?:utils/)?[A-Za-z0-9_-]+\.mjs$"),
) -> FileResponse:
    path = VENDOR_DIR / package / name
    if not path.is_file():
        raise NotFoundError(f"no vendored module {package}/{name}")
    return _module(path)


def check_origins(origins: list[str]) -> list[str]:
    """``scheme://host[:port]`` exactly, as a browser sends it in ``Origin``; anything else is a typo."""
    for origin in origins:
        if origin == "*" or not _ORIGIN.match(origin):
            raise ConfigError(
                f"--cors-origin {origin!r} is not an origin like https://app.example or http://127.0.0.1:3000"
            )
    return origins


class CorsMiddleware:
    """Any origin on the open paths, the allow-list elsewhere; a refused preflight is a 403 body.

    No credentials are ever allowed cross-origin: a foreign page authenticates with the bearer token
    it was given, never with the operator's dashboard cookie.
    """

    def __init__(self, app: ASGIApp, origins: list[str]) -> None:
        self.app = app
        self.origins = frozenset(check_origins(origins))

    def allowed(self, path: str, origin: str) -> str | None:
        if path in OPEN_PATHS or path.startswith(OPEN_PREFIX):
            return "*"
        return origin if origin in self.origins else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        origin = headers.get("origin")
        if origin is None:
            await self.app(scope, receive, send)
            return
        allow = self.allowed(scope["path"], origin)
        if scope["method"] == "OPTIONS" and "access-control-request-method" in headers:
            await self._preflight(send, allow)
            return
        extra = [] if allow is None else _allow_headers(allow)

        async def send_with_cors(message: Message) -> None:
            if message["type"] == "http.response.start" and extra:
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        await self.app(scope, receive, send_with_cors)

    async def _preflight(self, send: Send, allow: str | None) -> None:
        if allow is None:
            body = _REFUSED
            status, headers = 403, [(b"content-type", b"application/json")]
        else:
            body, status = b"", 204
            headers = [
                *_allow_headers(allow),
                (b"access-control-allow-methods", b"GET, POST, PUT, DELETE, OPTIONS"),
                (b"access-control-allow-headers", b"authorization, content-type, last-event-id"),
                (b"access-control-max-age", PREFLIGHT_MAX_AGE.encode()),
            ]
        headers.append((b"content-length", str(len(body)).encode()))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def _allow_headers(allow: str) -> list[tuple[bytes, bytes]]:
    headers = [(b"access-control-allow-origin", allow.encode("latin-1"))]
    if allow != "*":
        headers.append((b"vary", b"Origin"))
    return headers
