"""A slowloris on the TLS handshake itself: connections that never finish a ClientHello count from
their accept, are evicted or timed out like half-sent HTTP requests, and the operator still gets in."""

from __future__ import annotations

import httpx
from http_attack import HEADER_TIMEOUT_S, NOFILE, TLS_HALF, limit, slowloris
from tls.conftest import TlsNode


def test_handshake_slowloris_is_cut_off_and_the_operator_still_gets_in(tmp_path, pki) -> None:
    node = limit(TlsNode(tmp_path / "target", pki))
    try:
        node.start()
        verify = pki.client_context()

        def request(method: str, path: str, **kwargs) -> httpx.Response:
            return httpx.request(method, f"{node.url}{path}", timeout=2, verify=verify, **kwargs)

        figures = slowloris(node, TLS_HALF, request)
        assert figures["closed"].get("evicted", 0) > 0 and figures["closed"].get("tls_handshake", 0) > 0
        print(f"\nTLS handshake slowloris on a {NOFILE}-descriptor node ({HEADER_TIMEOUT_S} s): {figures}")
    finally:
        node.close()
