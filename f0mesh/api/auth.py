"""Admin authentication: a bearer token, or the dashboard's session cookie with a CSRF token.

Tokens are compared in constant time. The cookie is HttpOnly and SameSite=Strict; mutating
requests that rely on it must also echo the session's CSRF token in a header, so a page on another
origin cannot act with the operator's session. Sessions live in memory only: each login gets fresh
random values, which expire, and a logout, a revoke-all or a restart ends them without touching the
admin token.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from fastapi import Depends, Request
from fastapi.dependencies.models import Dependant
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.routing import BaseRoute, Route, WebSocketRoute

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


@dataclass(frozen=True)
class Session:
    csrf: str
    expires_at: float  # on the clock of its Sessions


class Sessions:
    """The dashboard's sessions: at most ``limit`` (a new login evicts the oldest), each valid for
    ``lifetime_s`` from its login, whatever its use. Only a digest of each cookie value is kept."""

    def __init__(
        self,
        lifetime_s: float = 12 * 3600.0,
        limit: int = 64,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.lifetime_s = lifetime_s
        self.limit = limit
        self._clock = clock
        self._sessions: OrderedDict[bytes, Session] = OrderedDict()

    def __len__(self) -> int:
        self._expire()
        return len(self._sessions)

    def create(self) -> tuple[str, Session]:
        """A new session: its cookie value and the session (whose CSRF token the page echoes)."""
        self._expire()
        value = secrets.token_urlsafe(32)
        session = Session(csrf=secrets.token_urlsafe(32), expires_at=self._clock() + self.lifetime_s)
        self._sessions[_digest(value)] = session
        while len(self._sessions) > self.limit:
            self._sessions.popitem(last=False)
        return value, session

    def get(self, value: str) -> Session | None:
        """The live session of a cookie value, or None (unknown, logged out, revoked or expired)."""
        self._expire()
        return self._sessions.get(_digest(value))

    def drop(self, value: str) -> bool:
        return self._sessions.pop(_digest(value), None) is not None

    def clear(self) -> int:
        """Revoke every session; returns how many were live."""
        live = len(self)
        self._sessions.clear()
        return live

    def _expire(self) -> None:
        # Sessions expire in the order they were made: the oldest are at the front.
        now = self._clock()
        while self._sessions and next(iter(self._sessions.values())).expires_at <= now:
            self._sessions.popitem(last=False)


def _digest(value: str) -> bytes:
    """Looked up by digest, so the table's lookup time tells nothing about a stored value."""
    return hashlib.sha256(value.encode("utf-8", "replace")).digest()


def token_matches(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode("utf-8", "replace"), expected.encode())


def check_csrf(headers: Mapping[str, str], session: Session) -> None:
    if not token_matches(headers.get(CSRF_HEADER, ""), session.csrf):
        raise F0MeshError("missing or wrong CSRF token header (x-csrf-token)", code="csrf", status=403)


def check_admin(
    token: str, sessions: Sessions, method: str, headers: Mapping[str, str], cookies: Mapping[str, str]
) -> None:
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
    session = sessions.get(cookie)
    if session is None:
        raise Unauthorized("session expired, ended or invalid: log in again")
    if method not in ("GET", "HEAD", "OPTIONS"):
        check_csrf(headers, session)


def check_request(request: Request) -> None:
    """check_admin for a request of the app (AdminGuard, require_admin, and any route that wants
    to know whether its caller is the operator)."""
    state = request.app.state
    check_admin(state.node.admin_token, state.sessions, request.method, request.headers, request.cookies)


def is_admin(request: Request) -> bool:
    """Whether a read request carries the admin token or a live session; a wrong one is merely anonymous."""
    try:
        check_request(request)
    except F0MeshError:
        return False
    return True


async def require_admin(
    request: Request, credentials: HTTPAuthorizationCredentials | None = Depends(bearer)
) -> None:
    """Marks an operation as admin in OpenAPI; AdminGuard has already checked before the body was read."""
    check_request(request)


def admin_operations(routes: Sequence[BaseRoute]) -> list[tuple[str, re.Pattern[str]]]:
    """(method, path pattern) of every operation that requires the admin token. A route this cannot
    look into (a mounted app, an included router) is a TypeError: the guard fails closed."""
    operations = []
    for route in routes:
        if isinstance(route, APIRoute):
            if _requires_admin(route.dependant):
                operations += [(method, route.path_regex) for method in sorted(route.methods)]
        elif not isinstance(route, Route | WebSocketRoute):
            raise TypeError(f"AdminGuard cannot tell whether {route!r} needs the admin token")
    return operations


def _requires_admin(dependant: Dependant) -> bool:
    return any(dep.call is require_admin or _requires_admin(dep) for dep in dependant.dependencies)


class AdminGuard:
    """ASGI middleware: admin operations answer 401 before their body is parsed, so a malformed body
    without a token is a 401, never a 422 that describes the schema to an anonymous caller.

    An operation is admin when ``require_admin`` is among its dependencies, which is also what puts
    the bearer security requirement in the app's OpenAPI schema (a test holds the two equal). Read
    from the routes, not from ``openapi()``: building the schema holds ~1.7 MB a node that nobody
    asks for it never needs (issue #25).
    """

    def __init__(self, app: Any, fastapi_app: Any) -> None:
        self.app = app
        self.fastapi_app = fastapi_app
        self._admin: list[tuple[str, re.Pattern[str]]] | None = None

    def _admin_operations(self) -> list[tuple[str, re.Pattern[str]]]:
        if self._admin is None:
            self._admin = admin_operations(self.fastapi_app.routes)
        return self._admin

    def _needs_admin(self, method: str, path: str) -> bool:
        if any(method == m and pattern.match(path) for m, pattern in self._admin_operations()):
            return True
        # With --private-read the read API and metrics need the token too; the page, /login and the
        # peer-facing worker stay open so peers can link and the operator can log in.
        return not self.fastapi_app.state.node.config.open_read and path.startswith(PRIVATE_READ_PREFIXES)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and self._needs_admin(scope["method"], scope["path"]):
            try:
                check_request(Request(scope))
            except F0MeshError as exc:
                count_error(self.fastapi_app, exc.status, exc.code)
                response = JSONResponse({"error": exc.code, "detail": exc.detail}, status_code=exc.status)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)
