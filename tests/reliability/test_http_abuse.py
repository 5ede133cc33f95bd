"""HTTP under abuse (issue 18, classes 4 and 5): slowloris, and idle anonymous event streams.

Real ``f0mesh up`` processes; the slowloris itself is in tests/http_attack.py (its TLS variant is in
tests/tls/test_tls_abuse.py).
"""

from __future__ import annotations

import contextlib
import json
import socket
from collections.abc import Iterator

import httpx
import pytest
from http_attack import HEADER_TIMEOUT_S, HTTP_HALF, NOFILE, limit, slowloris

from nodes import TOKEN, NodeProcess, wait_for

BEARER = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def attacked_node(tmp_path) -> Iterator[NodeProcess]:
    node = limit(NodeProcess(tmp_path / "target"))
    try:
        yield node.start()
    finally:
        node.close()


def test_slowloris_is_cut_off_and_the_operator_still_gets_in(attacked_node) -> None:
    def request(method: str, path: str, **kwargs) -> httpx.Response:
        return httpx.request(method, f"{attacked_node.url}{path}", timeout=2, **kwargs)

    figures = slowloris(attacked_node, HTTP_HALF, request)
    assert figures["closed"].get("evicted", 0) > 0 and figures["closed"].get("headers_timeout", 0) > 0
    print(f"\nslowloris on a {NOFILE}-descriptor node (header deadline {HEADER_TIMEOUT_S} s): {figures}")


def test_a_body_that_trickles_is_cut_off_with_408(attacked_node) -> None:
    node = attacked_node
    with socket.create_connection(("127.0.0.1", node.port), timeout=5) as sock:
        sock.sendall(
            b"POST /api/gossip HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"Authorization: Bearer " + TOKEN.encode() + b"\r\nContent-Length: 100000\r\n\r\n{"
        )
        sock.settimeout(HEADER_TIMEOUT_S + 20)
        reply = sock.recv(4096)
    assert reply.startswith(b"HTTP/1.1 408 "), reply
    assert json.loads(reply.split(b"\r\n\r\n", 1)[1])["error"] == "timeout"
    assert httpx.get(f"{node.url}/healthz", timeout=5).status_code == 200
    assert "Traceback" not in node.log_tail(200), node.log_tail(200)


# -- server-sent events ------------------------------------------------------------------------


def _open_stream(
    port: int, source: str, headers: dict[str, str] | None = None
) -> tuple[int, bytes, socket.socket]:
    """GET /api/events from ``source`` (any 127/8 address); the status, the first bytes, the socket."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10, source_address=(source, 0))
    lines = [f"{k}: {v}" for k, v in (headers or {}).items()]
    sock.sendall(("\r\n".join(["GET /api/events HTTP/1.1", "Host: 127.0.0.1", *lines]) + "\r\n\r\n").encode())
    data = b""
    for _ in range(64):
        data += sock.recv(4096)
        head, sep, rest = data.partition(b"\r\n\r\n")
        if sep and (rest or b"content-length: 0" in head.lower()):
            break
    return int(data.split(b" ", 2)[1]), data, sock


def _reason(reply: bytes) -> str:
    return json.loads(reply.split(b"\r\n\r\n", 1)[1])["detail"]


def test_idle_anonymous_streams_never_lock_the_operator_out(node_factory) -> None:
    node = node_factory("sse")
    streams: list[socket.socket] = []
    try:
        statuses: list[int] = []
        reasons: set[str] = set()
        for i in range(70):  # the 70 idle streams, from 18 addresses
            status, reply, sock = _open_stream(node.port, f"127.0.0.{2 + i // 4}")
            streams.append(sock)
            statuses.append(status)
            if status == 429:
                reasons.add(_reason(reply))
        assert statuses.count(200) == 32 and statuses.count(429) == 38, statuses
        assert any("anonymous event streams are in use" in r for r in reasons), reasons

        status, reply, sock = _open_stream(node.port, "127.0.0.2")
        streams.append(sock)
        assert status == 429 and "per client address" in _reason(reply), reply

        status, reply, sock = _open_stream(node.port, "127.0.0.2", BEARER)
        streams.append(sock)
        assert status == 200 and b": connected" in reply, reply
        login = httpx.get(f"{node.url}/login", params={"token": TOKEN}, follow_redirects=False, timeout=5)
        cookie = "; ".join(f"{k}={v}" for k, v in login.cookies.items())
        status, reply, sock = _open_stream(node.port, "127.0.0.99", {"Cookie": cookie})
        streams.append(sock)
        assert status == 200 and b": connected" in reply, reply
    finally:
        for sock in streams:
            with contextlib.suppress(OSError):
                sock.close()

    def anonymous_again() -> bool:
        status, _, sock = _open_stream(node.port, "127.0.0.200")
        sock.close()
        return status == 200

    wait_for(anonymous_again, 10, what="slots freed once the streams closed")
