"""aiortc's SCTP with delayed acknowledgements (RFC 9260 §6.2), as usrsctp and Linux do.

Why: aiortc 1.16.0 answers every packet that carries DATA with its own SACK packet. Each SACK is a
DTLS record encrypted here and decrypted, parsed and run through the sender's SACK handling there,
so every data packet costs a second packet each way; measured between two nodes that was ~1 SACK
per DATA packet, ~10 % of a gossip sender's CPU.

What changes: a SACK goes out for every second packet with DATA, at once for a packet that is not
the next in sequence (a gap, a duplicate, an out-of-order TSN, or the one that fills a gap: §6.7),
for a FORWARD TSN, for a DATA chunk with the SACK-IMMEDIATELY bit (RFC 7053) and outside the
ESTABLISHED state; otherwise within ``SACK_DELAY_S`` of the first unacknowledged packet. The bound
is a few ms, not the RFC's 200 ms: a lone message's sender keeps it in flight and its T3 timer
running until the SACK comes. Loss recovery is unchanged (gaps are reported at once). Measured
between two nodes: half the SACKs, ~1.35x the MB per CPU-second of a bulk transfer; for gossip
(~4 envelopes per packet) a gain, if any, within the noise.

The sending side: aiortc's slow start grows the window by at most one MTU per SACK (RFC 4960 §7.2.1),
so with a SACK per two packets a fresh association (and one after a T3 timeout) opened its window
~1.5x per round trip instead of 2x: over an emulated 60 ms round trip the first 1.25 MB took ~40 %
longer. So, as RFC 3465 (appropriate byte counting, L = 2) does for TCP's delayed ACKs, a SACK that
newly acknowledges two or more packets in slow start grows the window by up to two MTUs. Congestion
avoidance already counts bytes and is unchanged.

The receive side is a copy of aiortc's ``_handle_data`` with a different last step; the send side
wraps ``_receive_sack_chunk``. Both rely on how the methods below keep the SACK state and the window,
and are installed only if all of them are, byte for byte, the versions they were written against;
otherwise aiortc runs unchanged.
"""

from __future__ import annotations

import hashlib
import inspect
import logging
from typing import Any

from aiortc import rtcsctptransport as sctp

log = logging.getLogger("f0mesh.rtc.sctp_delayed_sack")

SACK_DELAY_S = 0.005  # the longest a packet with DATA waits for its SACK
SACK_IMMEDIATELY = 0x08  # DATA chunk flag of RFC 7053
ABC_LIMIT = 2  # RFC 3465's L: the most MTUs one SACK may add to the window in slow start

# aiortc 1.16.0: the methods replaced (the first and last), and those whose SACK state they rely on
RELIED_ON = (
    "_handle_data",
    "_send_sack",
    "_receive_data_chunk",
    "_receive_forward_tsn_chunk",
    "_mark_received",
    "_receive_sack_chunk",
)
COPIED_FROM = "0e2ffeb4e4f5f28c3197be0324213a8a9b67c50757cfa658889bd825c4e4eebf"

_installed: bool | None = None  # decided once per process
_stock_receive_sack_chunk: Any = None  # aiortc's, kept by install()


def _sources() -> str:
    return "".join(inspect.getsource(getattr(sctp.RTCSctpTransport, name)) for name in RELIED_ON)


async def _handle_data(self: Any, data: bytes) -> None:
    """aiortc 1.16.0's ``_handle_data``; only when to send the SACK differs (see the module doc)."""
    try:
        _, _, verification_tag, chunks = sctp.parse_packet(data)
    except ValueError:
        return

    # is this an init?
    init_chunk = len([x for x in chunks if isinstance(x, sctp.InitChunk)])
    if init_chunk:
        assert len(chunks) == 1
        expected_tag = 0
    else:
        expected_tag = self._local_verification_tag

    # verify tag
    if verification_tag != expected_tag:
        self._RTCSctpTransport__log_debug("Bad verification tag %d vs %d", verification_tag, expected_tag)
        return

    pending = self._sack_needed  # an earlier packet's DATA waits for the timer
    at_once = _ack_at_once(self, chunks)

    # handle chunks
    for chunk in chunks:
        await self._receive_chunk(chunk)

    # send SACK if needed
    if self._sack_needed:
        if at_once:
            await self._send_sack()
        elif not pending:
            _delay_sack(self)


def _ack_at_once(self: Any, chunks: list[Any]) -> bool:
    """Whether this packet, read before it is handled, is to be acknowledged at once."""
    if self._association_state != self.State.ESTABLISHED or self._sack_misordered:
        return True  # not established, or a gap: every packet is acknowledged until it is filled
    expected = self._last_received_tsn
    data = False
    for chunk in chunks:
        if isinstance(chunk, sctp.DataChunk):
            data = True
            expected = sctp.tsn_plus_one(expected)
            if chunk.tsn != expected or chunk.flags & SACK_IMMEDIATELY:
                return True
        elif isinstance(chunk, sctp.ForwardTsnChunk):
            return True
    return data and self._sack_needed  # the second packet with DATA since the last SACK


def _delay_sack(self: Any) -> None:
    """Acknowledge within SACK_DELAY_S unless a second packet does first.

    One timer per transport, never cancelled: a timer already running fires no later than a new one
    would, and when it fires early for a newer packet it waits again until that packet's deadline.
    """
    self._f0mesh_sack_due = self._loop.time() + SACK_DELAY_S
    if getattr(self, "_f0mesh_sack_timer", None) is None:
        self._f0mesh_sack_timer = self._loop.call_at(self._f0mesh_sack_due, _sack_timer_expired, self)


def _sack_timer_expired(self: Any) -> None:
    self._f0mesh_sack_timer = None
    if not self._sack_needed or self._association_state == self.State.CLOSED:
        return
    if self._loop.time() < self._f0mesh_sack_due - 0.001:
        self._f0mesh_sack_timer = self._loop.call_at(self._f0mesh_sack_due, _sack_timer_expired, self)
        return
    self._f0mesh_sack_task = self._loop.create_task(_send_delayed_sack(self))


async def _send_delayed_sack(self: Any) -> None:
    if not self._sack_needed:  # a second packet was acknowledged meanwhile
        return
    try:
        await self._send_sack()
    except ConnectionError:  # DTLS closed meanwhile: nothing left to acknowledge to
        log.debug("delayed SACK after the DTLS transport closed")


async def _receive_sack_chunk(self: Any, chunk: sctp.SackChunk) -> None:
    """aiortc's SACK handling, and in slow start up to one more MTU for a SACK of two or more packets."""
    mtu = sctp.USERDATA_MAX_LENGTH
    cwnd = self._cwnd
    acked = 0  # bytes this SACK newly acknowledges cumulatively, up to ABC_LIMIT MTUs
    if (
        self._fast_recovery_exit is None
        and cwnd <= self._ssthresh
        and self._flight_size >= cwnd
        and not sctp.uint32_gt(self._last_sacked_tsn, chunk.cumulative_tsn)
    ):
        for sent in self._sent_queue:
            if acked >= ABC_LIMIT * mtu or sctp.uint32_gt(sent.tsn, chunk.cumulative_tsn):
                break
            if not sent._acked:
                acked += sent._book_size
    await _stock_receive_sack_chunk(self, chunk)
    # aiortc grew it by exactly one MTU, as slow start without a loss does when a SACK acks that much
    if acked > mtu and self._cwnd == cwnd + mtu and self._fast_recovery_exit is None:
        self._cwnd += min(acked - mtu, (ABC_LIMIT - 1) * mtu)
        await self._transmit()  # fill it now: at the next SACK a window not full would not grow


def install() -> bool:
    """Install both sides once per process; False if aiortc's methods are not the ones relied on."""
    global _installed
    if _installed is not None:
        return _installed
    try:
        source = _sources()
    except (OSError, TypeError):
        source = ""
    _installed = hashlib.sha256(source.encode()).hexdigest() == COPIED_FROM
    if not _installed:
        log.info("aiortc's SCTP receiver is not the one f0mesh's delayed SACK was written for: left as is")
        return False
    global _stock_receive_sack_chunk
    _stock_receive_sack_chunk = sctp.RTCSctpTransport._receive_sack_chunk
    sctp.RTCSctpTransport._handle_data = _handle_data  # type: ignore[method-assign]
    sctp.RTCSctpTransport._receive_sack_chunk = _receive_sack_chunk  # type: ignore[method-assign]
    return True
