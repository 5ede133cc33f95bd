"""Mutual TLS for administration: the admin port admits only the CA's client certificates (and still
wants the token); the main port keeps the peer-facing endpoints, so peers link without certificates."""

from __future__ import annotations

import re
import socket
import ssl

import httpx
import pytest

from nodes import TOKEN, start_all, wait_for

PEER_PATHS = {"/healthz", "/offer", "/answer", "/api/mesh-rtc/offer", "/api/mesh-rtc/answer"}


def _raw_admin_exchange(port: int, context: ssl.SSLContext) -> bytes:
    """What a client gets back for one HTTP request on the admin port: the bytes, or b"" on refusal."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        try:
            with context.wrap_socket(sock, server_hostname="127.0.0.1") as tls:
                tls.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
                return tls.recv(4096)
        except (ssl.SSLError, ConnectionError):
            return b""


def test_admin_port_refuses_clients_without_a_certificate_from_the_ca(tls_node_factory, pki) -> None:
    a = tls_node_factory("a", admin=True)
    assert a.admin_http is not None and a.admin_port is not None

    # No certificate, or one from another CA: the TLS session is torn down before any HTTP is
    # answered (with TLS 1.3 the client's handshake completes first, then the server's
    # certificate check closes the connection), so no status code ever comes back.
    for cert in (None, pki.rogue_client):
        with (
            pytest.raises((httpx.ConnectError, httpx.RemoteProtocolError, httpx.ReadError)),
            httpx.Client(verify=pki.client_context(cert=cert), timeout=10) as anonymous,
        ):
            anonymous.get(f"{a.admin_url}/api/peers", headers={"Authorization": f"Bearer {TOKEN}"})
        assert _raw_admin_exchange(a.admin_port, pki.client_context(cert=cert)) == b""
    # The same raw exchange with the operator's certificate gets an HTTP answer.
    assert _raw_admin_exchange(a.admin_port, pki.client_context(cert=pki.client)).startswith(b"HTTP/1.1 200")

    # With the CA's certificate: the admin API and the dashboard, and the token is still required.
    r = a.admin_http.post("/api/gossip", json={"topic": "ops", "payload": "hello"})
    assert r.status_code == 200 and r.json()["id"], r.text
    page = a.admin_http.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    no_token = a.admin_http.post(
        "/api/gossip", json={"topic": "ops", "payload": "x"}, headers={"Authorization": ""}
    )
    assert no_token.status_code == 401 and no_token.json()["error"] == "unauthorized"
    wrong = a.admin_http.post(
        "/api/gossip", json={"topic": "ops", "payload": "x"}, headers={"Authorization": "Bearer wrong"}
    )
    assert wrong.status_code == 401


def test_main_port_refuses_admin_and_dashboard_requests(tls_node_factory) -> None:
    a = tls_node_factory("a", admin=True)
    assert a.admin_http is not None
    schema = a.admin_http.get("/openapi.json").json()
    admin_ops = [
        (method.upper(), re.sub(r"\{[^/]+\}", a.peer_id, path))
        for path, methods in schema["paths"].items()
        for method, spec in methods.items()
        if spec.get("security")
    ]
    assert ("POST", "/dial") in admin_ops and len(admin_ops) >= 8
    others = [("GET", p) for p in ("/", "/login?token=" + TOKEN, "/metrics", "/docs", "/api/peers")]
    for method, path in admin_ops + others:
        body = {} if method in ("POST", "PUT") else None
        r = a.http.request(method, path, json=body)  # the main-port client sends the token too
        assert r.status_code == 403, (method, path, r.status_code)
        assert r.json()["error"] == "admin_port"
        assert r.json()["detail"].startswith("admin API is served on the mTLS admin port")

    assert a.http.get("/healthz").json()["peer_id"] == a.peer_id
    for path in ("/offer", "/api/mesh-rtc/offer"):
        r = a.http.post(path, json={"sdp": "not a signed offer"})
        assert 400 <= r.status_code < 500 and r.json()["error"] != "admin_port", (path, r.text)


def test_peers_link_without_client_certificates(tls_node_factory) -> None:
    a, b = start_all([tls_node_factory(name, admin=True, start=False) for name in "ab"])
    assert a.admin_http is not None and b.admin_http is not None
    # a's operator dials on a's admin port; a's node reaches b's *main* port with no client certificate.
    r = a.admin_http.post("/dial", json={"url": b.url})
    assert r.status_code == 200, r.text
    assert r.json()["peer_id"] == b.peer_id and r.json()["state"] == "open"

    def b_link() -> bool:
        return any(
            lk["peer_id"] == a.peer_id and lk["state"] == "open"
            for lk in b.admin_http.get("/api/mesh-rtc/links").json()["links"]
        )

    wait_for(b_link, 15, what="link open on b")
    r = a.admin_http.post("/api/gossip", json={"topic": "fleet", "payload": {"n": 1}})
    assert r.status_code == 200, r.text
    got = wait_for(
        lambda: b.admin_http.get("/api/gossip/messages", params={"topic": "fleet"}).json()["messages"],
        20,
        what="gossip delivered to b",
    )
    assert got[0]["origin"] == a.peer_id and got[0]["payload"] == {"n": 1}
