"""The context that verifies HTTPS peers reads the system store on its first TLS connection, not when
the node starts (issue #25: ~1.7 MB a node dialling only http:// peers never needs), and verifies
against it as ``ssl.create_default_context()`` does. The store is this test's CA, by SSL_CERT_FILE."""

from __future__ import annotations

import asyncio
import ssl

import httpx
import pytest

from f0mesh.rtc.signaling_client import outbound_tls_context

ANSWER = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}"


async def _answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        writer.write(ANSWER)
        await writer.drain()
    except (TimeoutError, OSError, asyncio.IncompleteReadError, ssl.SSLError):
        pass  # the client refused the certificate
    finally:
        writer.close()


async def _get(context: ssl.SSLContext, pki) -> int:
    server_side = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_side.load_cert_chain(pki.server_cert, pki.server_key)
    server = await asyncio.start_server(_answer, "127.0.0.1", 0, ssl=server_side)
    port = server.sockets[0].getsockname()[1]
    try:
        async with httpx.AsyncClient(verify=context, timeout=5) as client:
            return (await client.get(f"https://127.0.0.1:{port}/")).status_code
    finally:
        server.close()
        await server.wait_closed()


async def test_the_system_store_is_read_on_the_first_tls_connection(pki, monkeypatch) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(pki.ca))
    monkeypatch.setenv("SSL_CERT_DIR", str(pki.ca.parent / "no-such-dir"))
    context = outbound_tls_context()
    assert context.cert_store_stats()["x509_ca"] == 0  # nothing held before a peer is dialled
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert await _get(context, pki) == 200
    assert context.cert_store_stats()["x509_ca"] == 1  # the store: this test's CA alone


async def test_a_peer_outside_the_system_store_is_refused(pki, monkeypatch) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(pki.rogue_ca))
    monkeypatch.setenv("SSL_CERT_DIR", str(pki.ca.parent / "no-such-dir"))
    with pytest.raises(httpx.ConnectError) as refused:
        await _get(outbound_tls_context(), pki)
    assert "CERTIFICATE_VERIFY_FAILED" in str(refused.value)


def test_a_given_ca_file_is_read_at_start_up(pki) -> None:
    """--tls-ca is read before the node listens: a bad file stops it there, not at the first dial."""
    assert outbound_tls_context(pki.ca).cert_store_stats()["x509_ca"] == 1
