"""Kernel buffer sizes of the UDP socket a link's traffic uses.

Why: aioice asks for a 256 KiB ``SO_RCVBUF``, which holds ~230 datagrams (~270 KB of SCTP payload)
on Linux, while aiortc's SCTP advertises a 1 MiB receive window. When the receiving event loop
pauses for a few milliseconds (a garbage collection, a store commit, a burst of gossip), the data
in flight overflows the socket; each dropped datagram costs an SCTP retransmission and halves the
sender's congestion window. Twice the window, as asked for here, leaves the loop ~100 ms of slack
at 20 MB/s. The kernel caps the request at ``net.core.rmem_max``/``wmem_max`` without an error, so
the effective size is read back and exposed rather than assumed.

aiortc and aioice have no public API for the socket: the nominated candidate pair's protocol is
reached through their private attributes, and anything unexpected there only means "unknown".
"""

from __future__ import annotations

import contextlib
import socket
from typing import Any, NamedTuple

MIB = 1024 * 1024
# Twice aiortc's advertised SCTP receive window (rtcsctptransport: _advertised_rwnd = 1 MiB).
DEFAULT_BUFFER_BYTES = 2 * MIB


class BufferSizes(NamedTuple):
    """Effective sizes as ``getsockopt`` reports them (Linux counts its bookkeeping: about twice
    what was asked, of which about half holds payload)."""

    receive: int
    send: int


def link_socket(pc: Any) -> socket.socket | None:
    """The UDP socket of an RTCPeerConnection's nominated ICE pair, or None (not yet nominated, a
    TURN-over-TCP path, or an aiortc/aioice that keeps it elsewhere)."""
    try:
        pair = pc.sctp.transport.transport._connection._nominated.get(1)
        transport = pair.protocol.transport
    except AttributeError:
        return None
    # A TURN relay's transport wraps the client's own socket, where the datagrams really arrive.
    inner = getattr(transport, "_TurnTransport__inner_protocol", None)
    if inner is not None:
        transport = getattr(inner, "transport", None)
    sock = transport.get_extra_info("socket") if transport is not None else None
    if sock is None or sock.type != socket.SOCK_DGRAM:
        return None
    return sock


def enlarge(sock: socket.socket, size: int = DEFAULT_BUFFER_BYTES) -> BufferSizes | None:
    """Ask for at least ``size`` bytes in each direction; never shrinks a buffer already larger.

    On Linux a capped request still yields 2 x ``rmem_max``, never less than aioice's own request
    gave, so asking cannot make things worse. Returns what the kernel actually granted, or None if
    the socket is already gone (the link is closing).
    """
    for option in (socket.SO_RCVBUF, socket.SO_SNDBUF):
        with contextlib.suppress(OSError):
            if sock.getsockopt(socket.SOL_SOCKET, option) < size:
                sock.setsockopt(socket.SOL_SOCKET, option, size)
    try:
        return BufferSizes(
            sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF),
            sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF),
        )
    except OSError:
        return None
