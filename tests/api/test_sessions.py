"""Dashboard sessions (issue 18, class 6): a fresh value per login, an absolute lifetime, logout, and
revoking them all at once without rotating the admin token. Time is injected, never slept."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from f0mesh.api.app import create_app
from f0mesh.api.auth import Sessions
from f0mesh.config import NodeConfig
from f0mesh.errors import ConfigError
from f0mesh.node import Node

TOKEN = "s3cret-token"
BEARER = {"Authorization": f"Bearer {TOKEN}"}


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def client(tmp_path) -> AsyncIterator[httpx.AsyncClient]:
    node = Node(NodeConfig(data_dir=tmp_path, admin_token=TOKEN, session_lifetime_s=3600))
    await node.start()
    app = create_app(node, manage_node=False)
    clock = FakeClock()
    app.state.sessions = Sessions(node.config.session_lifetime_s, limit=4, clock=clock)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://node") as c:
        c.clock = clock  # type: ignore[attr-defined]
        yield c
    await node.stop()


async def _login(client: httpx.AsyncClient) -> dict[str, str]:
    r = await client.get("/login", params={"token": TOKEN})
    assert r.status_code == 303, r.text
    client.cookies.clear()  # each login below stands for another browser
    return {"session": r.cookies["f0mesh_session"], "csrf": r.cookies["f0mesh_csrf"]}


def _as_browser(login: dict[str, str], csrf: bool = True) -> dict[str, str]:
    """The headers a logged-in page sends: its cookies, and the CSRF token header unless ``csrf`` is off."""
    headers = {"cookie": f"f0mesh_session={login['session']}; f0mesh_csrf={login['csrf']}"}
    return {**headers, "x-csrf-token": login["csrf"]} if csrf else headers


async def _publish(client: httpx.AsyncClient, login: dict[str, str]) -> httpx.Response:
    """An admin write riding a session, as the dashboard makes it."""
    return await client.post("/api/gossip", json={"topic": "t", "payload": 1}, headers=_as_browser(login))


async def test_each_login_gets_its_own_random_session(client) -> None:
    r = await client.get("/login", params={"token": TOKEN})
    set_cookie = " ".join(r.headers.get_list("set-cookie")).lower()
    assert "httponly" in set_cookie and "samesite=strict" in set_cookie and "max-age=3600" in set_cookie
    assert "secure" not in set_cookie  # plain HTTP here; tests/tls checks Secure over HTTPS
    one, two = await _login(client), await _login(client)
    assert one["session"] != two["session"] and one["csrf"] != two["csrf"]
    assert len(one["session"]) >= 32 and TOKEN not in one["session"] + one["csrf"]
    assert (await _publish(client, one)).status_code == 200
    assert (await _publish(client, two)).status_code == 200
    # One session's CSRF token does not authorise another session's writes.
    crossed = {"session": one["session"], "csrf": two["csrf"]}
    r = await _publish(client, crossed)
    assert r.status_code == 403 and r.json()["error"] == "csrf"


async def test_a_cookie_after_logout_is_refused(client) -> None:
    one, two = await _login(client), await _login(client)
    r = await client.post("/logout", headers=_as_browser(one, csrf=False))  # live session, no CSRF header
    assert r.status_code == 403 and r.json()["error"] == "csrf"
    assert (await _publish(client, one)).status_code == 200
    r = await client.post("/logout", headers=_as_browser(one))
    assert r.status_code == 200 and r.json() == {"ended": True}
    cleared = r.headers.get_list("set-cookie")
    assert len(cleared) == 2 and all('=""' in c and "max-age=0" in c.lower() for c in cleared), cleared
    r = await _publish(client, one)
    assert r.status_code == 401 and r.json()["error"] == "unauthorized"
    assert (await _publish(client, two)).status_code == 200  # the other browser stays logged in
    r = await client.post("/logout", headers=_as_browser(one))
    assert r.status_code == 200 and r.json() == {"ended": False}


async def test_revoke_all_ends_every_session_but_not_the_token(client) -> None:
    logins = [await _login(client) for _ in range(3)]
    assert (await client.delete("/api/sessions")).status_code == 401
    r = await client.delete("/api/sessions", headers=BEARER)
    assert r.status_code == 200 and r.json() == {"revoked": 3}
    for login in logins:
        assert (await _publish(client, login)).status_code == 401
    r = await client.post("/api/gossip", json={"topic": "t", "payload": 1}, headers=BEARER)
    assert r.status_code == 200
    # A session may revoke them all too (its own included), with its CSRF token.
    login = await _login(client)
    assert (await client.delete("/api/sessions", headers=_as_browser(login, csrf=False))).status_code == 403
    r = await client.delete("/api/sessions", headers=_as_browser(login))
    assert r.status_code == 200 and r.json() == {"revoked": 1}
    assert (await _publish(client, login)).status_code == 401


async def test_a_session_expires_after_its_lifetime_however_used(client) -> None:
    login = await _login(client)
    client.clock.now += 3599
    assert (await _publish(client, login)).status_code == 200
    client.clock.now += 1
    r = await _publish(client, login)
    assert r.status_code == 401 and "expired" in r.json()["detail"]
    later = await _login(client)
    assert (await _publish(client, later)).status_code == 200


async def test_sessions_are_bounded_and_the_oldest_goes_first(client) -> None:
    logins = [await _login(client) for _ in range(5)]  # the fixture allows 4
    assert (await _publish(client, logins[0])).status_code == 401
    for login in logins[1:]:
        assert (await _publish(client, login)).status_code == 200


async def test_openapi_documents_logout_and_revoke(client) -> None:
    spec = (await client.get("/openapi.json")).json()
    assert spec["paths"]["/api/sessions"]["delete"]["security"] == [{"admin": []}]
    assert "security" not in spec["paths"]["/logout"]["post"]


def test_session_table_unit() -> None:
    clock = FakeClock()
    sessions = Sessions(lifetime_s=10, limit=2, clock=clock)
    a, _ = sessions.create()
    clock.now += 5
    b, _ = sessions.create()
    assert len(sessions) == 2 and sessions.get(a) and sessions.get("nonsense") is None
    clock.now += 5  # a has lived 10 s: gone; b has 5 s left
    assert sessions.get(a) is None and sessions.get(b) is not None and len(sessions) == 1
    assert sessions.drop(b) and not sessions.drop(b) and sessions.clear() == 0


def test_session_lifetime_is_bounded(tmp_path) -> None:
    for bad in (0, 59, 400 * 86400):
        with pytest.raises(ConfigError, match="session-lifetime"):
            NodeConfig(data_dir=tmp_path, session_lifetime_s=bad)
