"""HTTP under abuse (issue 18, classes 4 and 5): slowloris, and idle anonymous event streams.

Real ``f0mesh up`` processes. For the slowloris the node's descriptor limit is lowered to 256, so a
few hundred half-sent requests are to it what 20,600 were to a node with the usual limit, and the
header deadline is set to 2 s through its environment variable (a node without the setting ignores
the variable, so these tests fail on such a node for the reason they name, not at start-up).
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from nodes import TOKEN, NodeProcess, wait_for

NOFILE = 256
HEADER_TIMEOUT_S = 2.0
FIRST_WAVE = 300  # more than the node has descriptors
SECOND_WAVE = 300  # opened while the operator's probes run
PROBES = 10
BEARER = {"Authorization": f"Bearer {TOKEN}"}


def _half_sent(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.sendall(b"POST /api/gossip HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Le")
    return sock


def _closed_by_node(sock: socket.socket, deadline: float) -> bool:
    """True once the node has closed the connection (after a 408/503, or a reset)."""
    for _ in range(64):  # a short error response, then end of stream
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            if not sock.recv(4096):
                return True
        except (ConnectionResetError, BrokenPipeError):
            return True
        except TimeoutError:
            return False
    return False


def _probe(url: str, method: str, path: str, **kwargs) -> bool:
    """One request on a connection of its own, as a monitor or the operator's CLI would make it."""
    try:
        return httpx.request(method, f"{url}{path}", timeout=2, **kwargs).status_code == 200
    except httpx.HTTPError:
        return False


def _node_fds(node: NodeProcess) -> int:
    return len(os.listdir(f"/proc/{node.proc.pid}/fd"))


def _closed_counts(node: NodeProcess) -> dict[str, float]:
    counts = {}
    for line in httpx.get(f"{node.url}/metrics", timeout=5).text.splitlines():
        if line.startswith("f0mesh_http_connections_closed_total{"):
            labels, value = line.rsplit(" ", 1)
            counts[labels.split('reason="')[1].split('"')[0]] = float(value)
    return counts


@pytest.fixture
def attacked_node(tmp_path) -> Iterator[NodeProcess]:
    node = NodeProcess(
        tmp_path / "target", nofile=NOFILE, env={"F0MESH_HTTP_HEADER_TIMEOUT": str(HEADER_TIMEOUT_S)}
    )
    try:
        yield node.start()
    finally:
        node.close()


def test_slowloris_is_cut_off_and_the_operator_still_gets_in(attacked_node) -> None:
    node = attacked_node
    baseline_fds = _node_fds(node)
    held: list[socket.socket] = []
    stop = threading.Event()
    last_opened = [0.0]

    def attacker() -> None:
        for _ in range(SECOND_WAVE):
            if stop.is_set():
                return
            held.append(_half_sent(node.port))
            last_opened[0] = time.monotonic()
            time.sleep(0.002)

    try:
        held.extend(_half_sent(node.port) for _ in range(FIRST_WAVE))
        wave = threading.Thread(target=attacker, daemon=True)
        wave.start()
        answered = made = 0
        for i in range(PROBES):
            made += 2
            answered += _probe(node.url, "GET", "/healthz")
            answered += _probe(
                node.url, "POST", "/api/gossip", json={"topic": "probe", "payload": i}, headers=BEARER
            )
            time.sleep(0.05)
        stop.set()
        wave.join(timeout=30)
        attack_over = last_opened[0] or time.monotonic()
        assert answered == made, f"only {answered} of {made} /healthz and admin probes answered"

        deadline = attack_over + HEADER_TIMEOUT_S + 20
        still_open = [s for s in held if not _closed_by_node(s, deadline)]
        recovered_s = time.monotonic() - attack_over
        assert not still_open, f"{len(still_open)} of {len(held)} half-sent requests still held"

        wait_for(
            lambda: _node_fds(node) <= baseline_fds + 8, 10, what="the node's descriptors back to normal"
        )
        assert httpx.get(f"{node.url}/healthz", timeout=5).json()["status"] == "ok"
        body = httpx.post(
            f"{node.url}/api/gossip", json={"topic": "after", "payload": 1}, headers=BEARER, timeout=5
        )
        assert body.status_code == 200, body.text
        closed = _closed_counts(node)
        assert closed.get("evicted", 0) > 0 and closed.get("headers_timeout", 0) > 0, closed
        print(
            f"\nslowloris: {len(held)} half-sent requests against a {NOFILE}-descriptor node; "
            f"probes answered {answered}/{made}; back to its baseline descriptors {recovered_s:.1f} s "
            f"after the last one was opened (header deadline {HEADER_TIMEOUT_S} s); closed by reason {closed}"
        )
    finally:
        stop.set()
        for sock in held:
            sock.close()


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
