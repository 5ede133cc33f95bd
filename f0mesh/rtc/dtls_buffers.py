"""OpenSSL's record buffers of each link's DTLS session, held only while a record is in them.

Why: OpenSSL gives every session a read and a write buffer big enough for a whole TLS record
(~17 KiB each, plus alignment) and keeps both for the session's life, so an idle link held ~35 KiB
of buffers it had not touched since its last packet. ``SSL_MODE_RELEASE_BUFFERS`` frees a buffer
as soon as it is empty and allocates it again for the next record: one malloc/free pair per
datagram, against ~160 µs of aiortc's own CPU per SCTP packet. Measured for issue #25
(``link_memory``, K = 7): ~25 kB less RSS per link.

aiortc builds a fresh ``SSL.Context`` per DTLS transport in ``RTCCertificate._create_ssl_context``
and offers no hook, so the mode is set by wrapping that method. If aiortc no longer has it, nothing
is wrapped and links keep OpenSSL's defaults.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any

from aiortc import rtcdtlstransport
from OpenSSL import SSL

log = logging.getLogger("f0mesh.rtc.dtls_buffers")

_installed: bool | None = None  # decided once per process


def _releasing(create: Callable[..., SSL.Context]) -> Callable[..., SSL.Context]:
    @functools.wraps(create)
    def create_ssl_context(self: Any, *args: Any, **kwargs: Any) -> SSL.Context:
        ctx = create(self, *args, **kwargs)
        ctx.set_mode(SSL.MODE_RELEASE_BUFFERS)
        return ctx

    return create_ssl_context


def install() -> bool:
    """Make every DTLS context aiortc creates from now on release idle buffers; False if aiortc
    has no ``RTCCertificate._create_ssl_context`` to wrap."""
    global _installed
    if _installed is not None:
        return _installed
    create = getattr(rtcdtlstransport.RTCCertificate, "_create_ssl_context", None)
    _installed = callable(create)
    if not _installed:
        log.info("aiortc has no RTCCertificate._create_ssl_context: DTLS buffers left as OpenSSL keeps them")
        return False
    rtcdtlstransport.RTCCertificate._create_ssl_context = _releasing(create)  # type: ignore[method-assign]
    return True
