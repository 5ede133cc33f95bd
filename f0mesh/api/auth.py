"""Admin authentication: a bearer token, or the dashboard's session cookie with a CSRF token.

Tokens are compared in constant time. The cookie is HttpOnly and SameSite=Strict; mutating
requests that rely on it must also echo the CSRF token in a header, so a page on another origin
cannot act with the operator's session.
"""

from __future__ import annotations

import hashlib
import hmac

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from f0mesh.errors import F0MeshError

SESSION_COOKIE = "f0mesh_session"
CSRF_COOKIE = "f0mesh_csrf"
CSRF_HEADER = "x-csrf-token"

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


def require_admin(
    request: Request, credentials: HTTPAuthorizationCredentials | None = Depends(bearer)
) -> None:
    token: str = request.app.state.node.admin_token
    if credentials is not None:
        if credentials.scheme.lower() == "bearer" and token_matches(credentials.credentials, token):
            return
        raise Unauthorized("wrong admin token")
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie is None:
        raise Unauthorized("admin token required: Authorization: Bearer <token>, or log in at /login")
    if not token_matches(cookie, session_value(token)):
        raise Unauthorized("session expired or invalid: log in again")
    if request.method not in ("GET", "HEAD", "OPTIONS"):
        header = request.headers.get(CSRF_HEADER, "")
        if not token_matches(header, csrf_value(token)):
            raise F0MeshError("missing or wrong CSRF token header (x-csrf-token)", code="csrf", status=403)
