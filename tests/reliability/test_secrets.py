"""Secrets and exposure (issue 13, item 5).

A node runs with --log-level debug, links to a peer, and is driven through a login and admin calls;
then: its key files are 0600, neither the admin token (nor a session's cookie and CSRF values) nor
the identity key appears in its log or store, it listens on 127.0.0.1 only, it answers no
foreign Origin with CORS headers, and no GET path of its API shows any of this node's or its peer's
secrets.
"""

from __future__ import annotations

import os
import re
import secrets
import stat
import time
from pathlib import Path

import httpx
import pytest

import f0mesh

from nodes import NodeProcess, wait_for

KEY_MAGIC = b"f0mesh-ed25519-v1\n"
EVIL_ORIGIN = "https://evil.example"


def _key_hex(data_dir: Path) -> str:
    content = (data_dir / "identity.key").read_bytes()
    assert content.startswith(KEY_MAGIC)
    return content[len(KEY_MAGIC) :].decode().strip()


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _secrets_of(node: NodeProcess, token: str, login: dict[str, str] | None = None) -> dict[str, str]:
    key = _key_hex(node.data_dir)
    return {
        "admin token": token,
        "identity key (hex)": key,
        "identity key (HEX)": key.upper(),
        **(login or {}),
    }


def _login(browser: httpx.Client, token: str) -> dict[str, str]:
    """Log in; returns the session's cookie values."""
    r = browser.get("/login", params={"token": token}, follow_redirects=False)
    assert r.status_code == 303, r.text
    session, csrf = browser.cookies.get("f0mesh_session"), browser.cookies.get("f0mesh_csrf")
    assert session and csrf and len(session) >= 32 and token not in session + csrf
    return {"session cookie value": session, "csrf value": csrf}


def _leaks(text: str, secret_values: dict[str, str]) -> list[str]:
    return [name for name, value in secret_values.items() if value and value in text]


def _client(node: NodeProcess, token: str) -> httpx.Client:
    return httpx.Client(base_url=node.url, timeout=30, headers={"Authorization": f"Bearer {token}"})


@pytest.fixture(scope="module")
def secret_pair(tmp_path_factory):
    """A node with its own token and debug logging, linked to a peer with another token."""
    token = "tok-" + secrets.token_urlsafe(24)
    peer_token = "peer-" + secrets.token_urlsafe(24)
    root = tmp_path_factory.mktemp("secrets")
    node = NodeProcess(root / "secret", extra=["--admin-token", token, "--log-level", "debug"])
    peer = NodeProcess(root / "peer", extra=["--admin-token", peer_token])
    try:
        node.start()
        peer.start()
        with _client(node, token) as api:
            r = api.post("/dial", json={"url": peer.url})
            assert r.status_code == 200, r.text
            yield node, token, peer, peer_token, api
    finally:
        node.close()
        peer.close()


def test_key_files_are_private_and_secrets_never_logged(secret_pair) -> None:
    node, token, peer, peer_token, api = secret_pair
    assert _mode(node.data_dir / "identity.key") == 0o600
    # Login, cookie-authenticated admin calls, bearer admin calls, and refused attempts.
    with httpx.Client(base_url=node.url, timeout=30) as browser:
        login = _login(browser, token)
        csrf = login["csrf value"]
        r = browser.post(
            "/api/gossip", json={"topic": "t", "payload": {"via": "cookie"}}, headers={"x-csrf-token": csrf}
        )
        assert r.status_code == 200, r.text
        assert browser.post("/api/gossip", json={"topic": "t", "payload": 1}).status_code == 403  # no CSRF
        assert browser.get("/login", params={"token": peer_token}).status_code == 401
    assert api.post("/api/gossip", json={"topic": "t", "payload": {"via": "bearer"}}).status_code == 200
    assert api.put(f"/api/trust/{peer.peer_id}", json={"weight": 0.7}).status_code == 200
    r = api.post("/api/state/notes", json={"kind": "map", "set": {"k": "v"}})
    assert r.status_code == 200, r.text
    wrong = httpx.post(
        f"{node.url}/api/gossip",
        json={"topic": "t", "payload": 2},
        headers={"Authorization": f"Bearer {peer_token}"},
    )
    assert wrong.status_code == 401
    assert api.get("/api/audit").status_code == 200
    time.sleep(1.0)  # let the debug log catch up with what was just done

    log = (node.data_dir / "node.log").read_text(errors="replace")
    assert re.search(r"\bDEBUG\b", log), "the node did not log at debug level"
    for name, secret_values in (
        ("own", _secrets_of(node, token, login)),
        ("peer's", _secrets_of(peer, peer_token)),
    ):
        assert not _leaks(log, secret_values), (name, _leaks(log, secret_values))
    # The key never leaves its file: not in the store either.
    raw_key = bytes.fromhex(_key_hex(node.data_dir))
    for path in node.data_dir.glob("mesh.db*"):
        data = path.read_bytes()
        assert raw_key not in data and _key_hex(node.data_dir).encode() not in data, path
        assert token.encode() not in data, path


def test_generated_admin_token_file_is_private(node_factory) -> None:
    node = node_factory("gen", extra=["--admin-token", ""])  # empty: the node generates its own
    path = node.data_dir / "admin.token"
    assert path.exists()
    assert _mode(path) == 0o600 and _mode(node.data_dir / "identity.key") == 0o600
    token = path.read_text().strip()
    assert len(token) >= 32
    with _client(node, token) as api:
        assert api.post("/api/gossip", json={"topic": "t", "payload": 1}).status_code == 200
    assert node.http.post("/api/gossip", json={"topic": "t", "payload": 1}).status_code == 401
    log = (node.data_dir / "node.log").read_text(errors="replace")
    assert token not in log


def _listening(pid: int) -> list[tuple[str, int]]:
    """(address, port) of every TCP socket of the process in LISTEN state, from /proc."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    found = []
    for name, width in (("tcp", 8), ("tcp6", 32)):
        with open(f"/proc/{pid}/net/{name}") as fh:
            next(fh)
            for line in fh:
                fields = line.split()
                local, state, inode = fields[1], fields[3], fields[9]
                if state != "0A" or inode not in inodes:
                    continue
                addr_hex, port_hex = local.split(":")
                assert len(addr_hex) == width
                if width == 8:
                    addr = ".".join(str(b) for b in reversed(bytes.fromhex(addr_hex)))
                else:
                    words = [bytes.fromhex(addr_hex[i : i + 8])[::-1].hex() for i in range(0, 32, 8)]
                    addr = "ipv6:" + "".join(words)
                found.append((addr, int(port_hex, 16)))
    return found


def test_listens_on_loopback_only_by_default(secret_pair) -> None:
    for node in (secret_pair[0], secret_pair[2]):  # both started without --host
        sockets = _listening(node.proc.pid)
        assert sockets, "the node holds no listening socket?"
        assert sockets == [("127.0.0.1", node.port)], sockets


def test_cors_closed_by_default(secret_pair) -> None:
    node, token, _peer, _peer_token, _api = secret_pair
    headers = {"Origin": EVIL_ORIGIN}
    for path in ("/api/peers", "/api/trust", "/api/mesh-rtc/links", "/metrics"):
        r = httpx.get(f"{node.url}{path}", headers=headers)
        assert r.status_code == 200, (path, r.status_code)
        assert not [h for h in r.headers if h.lower().startswith("access-control-")], (path, r.headers)
    # what a page on any site needs to join as a browser peer is open to every origin, never with cookies
    r = httpx.get(f"{node.url}/healthz", headers=headers)
    assert r.headers.get("access-control-allow-origin") == "*", r.headers
    assert "access-control-allow-credentials" not in r.headers
    preflight = httpx.options(
        f"{node.url}/api/gossip",
        headers={
            **headers,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type",
        },
    )
    assert "access-control-allow-origin" not in preflight.headers, preflight.headers
    assert "access-control-allow-credentials" not in preflight.headers
    # A cross-site page riding the operator's session still cannot act: it has no CSRF token.
    with httpx.Client(base_url=node.url, timeout=30) as browser:
        _login(browser, token)
        r = browser.post("/api/gossip", json={"topic": "t", "payload": 1}, headers=headers)
        assert r.status_code == 403 and r.json()["error"] == "csrf", r.text


def _get_paths(api: httpx.Client, fills: dict[str, str]) -> list[str]:
    schema = api.get("/openapi.json").json()
    paths = []
    for path, ops in schema["paths"].items():
        if "get" not in ops or path == "/api/events":
            continue
        names = re.findall(r"\{(\w+)\}", path)
        if all(n in fills for n in names):
            paths.append(re.sub(r"\{(\w+)\}", lambda m: fills[m.group(1)], path))
    static = Path(f0mesh.__file__).parent / "dashboard" / "static"
    paths += ["/openapi.json", "/docs", "/metrics", "/", "/favicon.ico"]
    paths += [f"/dashboard/{p.name}" for p in sorted(static.iterdir()) if p.is_file()]
    return paths


def test_no_get_endpoint_exposes_secrets(secret_pair) -> None:
    node, token, peer, peer_token, api = secret_pair
    assert api.post("/api/gossip", json={"topic": "t", "payload": {"hello": 1}}).status_code == 200
    assert api.post("/api/state/notes", json={"kind": "map", "set": {"k": "v"}}).status_code == 200
    wait_for(lambda: api.get("/api/telemetry").json()["nodes"].get(peer.peer_id), 30, what="peer telemetry")
    with httpx.Client(base_url=node.url, timeout=30) as browser:
        login = _login(browser, token)  # a live session whose values no GET may show
    fills = {"peer_id": peer.peer_id, "name": "notes"}
    paths = _get_paths(api, fills)
    assert len(paths) >= 15, paths
    secret_values = {
        **{f"own {k}": v for k, v in _secrets_of(node, token, login).items()},
        **{f"peer's {k}": v for k, v in _secrets_of(peer, peer_token).items()},
    }
    seen = 0
    with httpx.Client(base_url=node.url, timeout=30) as anonymous:
        for path in paths:
            # As an anonymous caller and as the operator: neither may see a secret.
            for client in (anonymous, api):
                r = client.get(path)
                assert r.status_code < 500, (path, r.status_code, r.text[:300])
                assert not _leaks(r.text, secret_values), (path, _leaks(r.text, secret_values))
                assert not [h for h, v in r.headers.items() if _leaks(v, secret_values)], (path, r.headers)
                seen += 1
    # The event stream too, while something happens.
    with httpx.stream("GET", f"{node.url}/api/events", timeout=10) as stream:
        assert api.post("/api/gossip", json={"topic": "t", "payload": {"live": 1}}).status_code == 200
        text = ""
        for chunk in stream.iter_text():
            text += chunk
            if '"live"' in text:
                break
    assert not _leaks(text, secret_values), _leaks(text, secret_values)
    print(f"{len(paths)} GET paths checked, {seen} responses, plus the event stream")
