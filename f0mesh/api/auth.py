"""Admin authentication: a bearer token, or the dashboard's session cookie with a CSRF token.

Tokens are compared in constant time. The cookie is HttpOnly and SameSite=Strict; mutating
requests that rely on it must also echo the CSRF token in a header, so a page on another origin
cannot act with the operator's session.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping
from typing import Any

from fastapi import Depends, Request
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from f0mesh.api.errors import count_error
from f0mesh.errors import F0MeshError

SESSION_COOKIE = "f0mesh_session"
CSRF_COOKIE = "f0mesh_csrf"
CSRF_HEADER = "x-csrf-token"

PRIVATE_READ_PREFIXES = (
    "/api/peers",
    "/api/gossip",
    "/api/audit",
    "/api/trust",
    "/api/telemetry",
    "/api/state",
    "/api/events",
    "/api/mesh-rtc/links",
    "/metrics",
    "/docs",
    "/openapi.json",
    "/redoc",
)

bearer = HTTPBearer(auto_error=False, scheme_name="admin", description="The node's admin token")


class Unauthorized(F0MeshError):
    code = "unauthorized"
    status = 401


def session_value(token: str) -> str:
    return hmac.new(token.encode(), b"f0mesh-session-v1", hashlib.sha256).hexdigest()


def csrf_value(token: str) -> str:
    return hmac.new(token.encode(), b"f0mesh-csrf-v1", hashlib.sha256).hexdigest()


def token_matches(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode("utf-8", "replace"), expected.encode())


def check_admin(token: str, method: str, headers: Mapping[str, str], cookies: Mapping[str, str]) -> None:
    """Raise 401 (or 403 for a missing CSRF header) unless the request carries the admin token."""
    authorization = headers.get("authorization", "")
    if authorization:
        scheme, _, given = authorization.partition(" ")
        if scheme.lower() == "bearer" and token_matches(given.strip(), token):
            return
        raise Unauthorized("wrong admin token")
    cookie = cookies.get(SESSION_COOKIE)
    if cookie is None:
        raise Unauthorized("admin token required: Authorization: Bearer <token>, or log in at /login")
    if not token_matches(cookie, session_value(token)):
        raise Unauthorized("session expired or invalid: log in again")
    if method not in ("GET", "HEAD", "OPTIONS") and not token_matches(
        headers.get(CSRF_HEADER, ""), csrf_value(token)
    ):
        raise F0MeshError("missing or wrong CSRF token header (x-csrf-token)", code="csrf", status=403)


def is_admin(token: str, headers: Mapping[str, str], cookies: Mapping[str, str]) -> bool:
    """Whether a read request carries the admin token; a wrong one is merely anonymous here."""
    try:
        check_admin(token, "GET", headers, cookies)
    except F0MeshError:
        return False
    return True


def require_admin(
    request: Request, credentials: HTTPAuthorizationCredentials | None = Depends(bearer)
) -> None:
    """Marks an operation as admin in OpenAPI; AdminGuard has already checked before the body was read."""
    check_admin(request.app.state.node.admin_token, request.method, request.headers, request.cookies)


class AdminGuard:
    """ASGI middleware: admin operations answer 401 before their body is parsed, so a malformed body
    without a token is a 401, never a 422 that describes the schema to an anonymous caller.

    Which operations are admin is read from the app's own OpenAPI schema (those with the bearer
    security requirement), the same source clients and the fuzz tests use.
    """

    def __init__(self, app: Any, fastapi_app: Any) -> None:
        self.app = app
        self.fastapi_app = fastapi_app
        self._admin: list[tuple[str, re.Pattern[str]]] | None = None

    def _admin_operations(self) -> list[tuple[str, re.Pattern[str]]]:
        if self._admin is None:
            operations = []
            for path, methods in self.fastapi_app.openapi().get("paths", {}).items():
                pattern = re.compile("^" + re.sub(r"\\{[^/]+?\\}", "[^/]+", re.escape(path)) + "$")
                for method, spec in methods.items():
                    if isinstance(spec, dict) and spec.get("security"):
                        operations.append((method.upper(), pattern))
            self._admin = operations
        return self._admin

    def _needs_admin(self, method: str, path: str) -> bool:
        if any(method == m and pattern.match(path) for m, pattern in self._admin_operations()):
            return True
        # With --private-read the read API and metrics need the token too; the page, /login and the
        # peer-facing worker stay open so peers can link and the operator can log in.
        return not self.fastapi_app.state.node.config.open_read and path.startswith(PRIVATE_READ_PREFIXES)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and self._needs_admin(scope["method"], scope["path"]):
            request = Request(scope)
            try:
                check_admin(
                    self.fastapi_app.state.node.admin_token, request.method, request.headers, request.cookies
                )
            except F0MeshError as exc:
                count_error(self.fastapi_app, exc.status, exc.code)
                response = JSONResponse({"error": exc.code, "detail": exc.detail}, status_code=exc.status)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)
