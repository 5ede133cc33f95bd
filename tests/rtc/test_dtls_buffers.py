"""Every link's DTLS session releases OpenSSL's record buffers while they are empty, and still works."""

from __future__ import annotations

import os

from aiortc import rtcdtlstransport
from bare_link import bare_link
from OpenSSL import SSL
from OpenSSL._util import lib
from sctp_pair import channel_pair

from f0mesh.rtc.link import Link


def _releases(ctx: SSL.Context) -> bool:
    return bool(ctx.set_mode(0) & SSL.MODE_RELEASE_BUFFERS)  # set_mode ORs in and returns the mode


def _session_releases(session: SSL.Connection) -> bool:
    return bool(lib.SSL_set_mode(session._ssl, 0) & SSL.MODE_RELEASE_BUFFERS)  # pyOpenSSL has no getter


async def _a_link() -> Link:
    link = bare_link()
    await link.pc.close()
    return link


async def test_a_link_makes_every_dtls_context_release_idle_buffers() -> None:
    await _a_link()
    certificate = rtcdtlstransport.RTCCertificate.generateCertificate()
    assert _releases(certificate._create_ssl_context(srtp_profiles=rtcdtlstransport.SRTP_PROFILES))


async def test_a_live_session_releases_its_buffers_and_carries_records_of_every_size() -> None:
    await _a_link()
    async with channel_pair() as pair:
        for pc in (pair.a, pair.b):
            assert _session_releases(pc.sctp.transport._ssl)
        # one byte, about one datagram, and messages of several records each (16 KiB and more)
        messages = [os.urandom(size) for size in (1, 1100, 1200, 16 * 1024, 60_000, 3)] * 3
        assert await pair.transfer(messages) == messages
        assert await pair.transfer(messages[:2]) == messages[:2]  # buffers allocated again after idle
