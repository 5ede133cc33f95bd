"""A slowloris against a real ``f0mesh up``, shared by the plain HTTP and the TLS tests.

The node under attack runs with its descriptor limit lowered to ``NOFILE``, so a few hundred
half-sent requests are to it what 20,600 were to a node with the usual limit.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

import httpx

from nodes import TOKEN, NodeProcess, wait_for

NOFILE = 256
HEADER_TIMEOUT_S = 2.0
FIRST_WAVE = 300  # more than the node has descriptors
SECOND_WAVE = 300  # opened while the operator's probes run
PROBES = 10
BEARER = {"Authorization": f"Bearer {TOKEN}"}
HTTP_HALF = b"POST /api/gossip HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Le"
TLS_HALF = b"\x16\x03\x01\x02\x00\x01"  # the start of a ClientHello, never finished

# One request on a connection of its own, as a monitor or the operator's CLI would make it.
Request = Callable[..., httpx.Response]


def limit(node: NodeProcess) -> NodeProcess:
    """Lower the node's descriptors and header deadline (through its environment variable: a node
    without the setting ignores it, so the tests fail on such a node for the reason they name)."""
    node.nofile = NOFILE
    node.env = {"F0MESH_HTTP_HEADER_TIMEOUT": str(HEADER_TIMEOUT_S)}
    return node


def half_sent(port: int, first_bytes: bytes) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.sendall(first_bytes)
    return sock


def closed_by_node(sock: socket.socket, deadline: float) -> bool:
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


def node_fds(node: NodeProcess) -> int:
    assert node.proc is not None
    return len(os.listdir(f"/proc/{node.proc.pid}/fd"))


def closed_counts(request: Request) -> dict[str, float]:
    counts = {}
    for line in request("GET", "/metrics").text.splitlines():
        if line.startswith("f0mesh_http_connections_closed_total{"):
            labels, value = line.rsplit(" ", 1)
            counts[labels.split('reason="')[1].split('"')[0]] = float(value)
    return counts


def answered(request: Request, method: str, path: str, **kwargs: Any) -> bool:
    try:
        return request(method, path, **kwargs).status_code == 200
    except httpx.HTTPError:
        return False


def slowloris(node: NodeProcess, first_bytes: bytes, request: Request) -> dict[str, Any]:
    """Hold half-sent connections while probing ``/healthz`` and an admin request; every probe must
    be answered, every held connection closed by the node, and the node back to normal after."""
    baseline_fds = node_fds(node)
    held: list[socket.socket] = []
    stop = threading.Event()
    last_opened = [0.0]

    def attacker() -> None:
        for _ in range(SECOND_WAVE):
            if stop.is_set():
                return
            held.append(half_sent(node.port, first_bytes))
            last_opened[0] = time.monotonic()
            time.sleep(0.002)

    try:
        held.extend(half_sent(node.port, first_bytes) for _ in range(FIRST_WAVE))
        wave = threading.Thread(target=attacker, daemon=True)
        wave.start()
        ok = made = 0
        for i in range(PROBES):
            made += 2
            ok += answered(request, "GET", "/healthz")
            ok += answered(
                request, "POST", "/api/gossip", json={"topic": "probe", "payload": i}, headers=BEARER
            )
            time.sleep(0.05)
        stop.set()
        wave.join(timeout=30)
        attack_over = last_opened[0] or time.monotonic()
        assert ok == made, f"only {ok} of {made} /healthz and admin probes answered"

        deadline = attack_over + HEADER_TIMEOUT_S + 20
        still_open = [s for s in held if not closed_by_node(s, deadline)]
        assert not still_open, f"{len(still_open)} of {len(held)} half-sent requests still held"
        wait_for(lambda: node_fds(node) <= baseline_fds + 8, 10, what="the node's descriptors back to normal")
        recovered_s = time.monotonic() - attack_over

        assert request("GET", "/healthz").json()["status"] == "ok"
        after = request("POST", "/api/gossip", json={"topic": "after", "payload": 1}, headers=BEARER)
        assert after.status_code == 200, after.text
        return {
            "held": len(held),
            "probes": f"{ok}/{made}",
            "recovered_s": round(recovered_s, 1),
            "closed": closed_counts(request),
        }
    finally:
        stop.set()
        for sock in held:
            sock.close()
