"""The dashboard's sessions: log in with the admin token, log out, and revoke them all at once."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import RedirectResponse, Response

from f0mesh.api.auth import (
    CSRF_COOKIE,
    SESSION_COOKIE,
    Sessions,
    Unauthorized,
    check_csrf,
    require_admin,
    token_matches,
)
from f0mesh.api.worker import get_node
from f0mesh.node import Node

router = APIRouter(tags=["sessions"])


async def _sessions(request: Request) -> Sessions:
    return request.app.state.sessions


def _clear_cookies(response: Response, node: Node) -> None:
    secure = node.url.startswith("https://")
    for name, httponly in ((SESSION_COOKIE, True), (CSRF_COOKIE, False)):
        response.delete_cookie(name, httponly=httponly, samesite="strict", secure=secure)


@router.get("/login", include_in_schema=False)
async def login(
    token: str = Query(max_length=512),
    node: Node = Depends(get_node),
    sessions: Sessions = Depends(_sessions),
) -> Response:
    """Exchange the admin token for a new dashboard session, as Jupyter's token links do."""
    if not token_matches(token, node.admin_token):
        raise Unauthorized("wrong admin token")
    value, session = sessions.create()
    response = RedirectResponse("/", status_code=303)
    secure = node.url.startswith("https://")
    max_age = int(sessions.lifetime_s)
    for name, content, httponly in ((SESSION_COOKIE, value, True), (CSRF_COOKIE, session.csrf, False)):
        response.set_cookie(
            name, content, max_age=max_age, httponly=httponly, samesite="strict", secure=secure
        )
    return response


@router.post("/logout")
async def logout(
    request: Request,
    response: Response,
    node: Node = Depends(get_node),
    sessions: Sessions = Depends(_sessions),
) -> dict[str, bool]:
    """End this browser's dashboard session (the CSRF header is required while it is live) and clear
    its cookies. Without a live session it only clears them."""
    value = request.cookies.get(SESSION_COOKIE)
    session = sessions.get(value) if value else None
    if value and session is not None:
        check_csrf(request.headers, session)
        sessions.drop(value)
    _clear_cookies(response, node)
    return {"ended": session is not None}


@router.delete("/api/sessions", dependencies=[Depends(require_admin)])
async def revoke_sessions(
    response: Response, node: Node = Depends(get_node), sessions: Sessions = Depends(_sessions)
) -> dict[str, int]:
    """Revoke every dashboard session at once (a lost laptop, a cookie seen where it should not be);
    the admin token stays valid. Returns how many sessions were live."""
    revoked = sessions.clear()
    _clear_cookies(response, node)
    return {"revoked": revoked}
