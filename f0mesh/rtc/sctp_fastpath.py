"""aiortc's SCTP sender without its per-SACK scan of every chunk in flight.

Why: ``RTCSctpTransport._transmit`` runs on every SACK and every DataChannel send, and first walks
the whole sent queue looking for chunks marked for retransmission. In steady state none is marked,
yet the walk costs O(chunks in flight) each time: ~900 chunks once the window reaches SCTP's 1 MiB,
which it does as soon as datagrams stop being lost (rtc/udp_buffers.py). Measured on loopback,
that walk was a third of a bulk sender's CPU. webrtc-rs made the same change (skip the scan unless
something is marked); this is the aiortc equivalent, to be dropped once aiortc has it.

How it stays exact: every ``DataChunk._retransmit = True`` in the process bumps one counter. A
transport that finished a scan with nothing left marked remembers the counter; while the counter
has not moved since, no chunk of its queue can be marked, so the walk would do nothing and is
skipped. Anything else (a mark anywhere, an early return) means a full scan, as aiortc does.

The replacement is a copy of aiortc's method with that guard: it is installed only if aiortc's
method is, byte for byte, the version it was copied from; otherwise aiortc runs unchanged.
"""

from __future__ import annotations

import hashlib
import inspect
import logging
import time
from typing import Any

from aiortc import rtcsctptransport as sctp

log = logging.getLogger("f0mesh.rtc.sctp_fastpath")

# sha256 of ``inspect.getsource(RTCSctpTransport._transmit)`` in aiortc 1.16.0, the copied version
COPIED_FROM = "aa8941d5f8f020e8b4e438e02084533dd78399da498638a013025252e5fe8115"

_marks = 0  # DataChunk._retransmit = True assignments in this process, ever
_installed: bool | None = None  # decided once per process


class _RetransmitFlag:
    """``DataChunk._retransmit`` as a data descriptor: a plain value, and every True counted."""

    def __get__(self, chunk: Any, owner: type | None = None) -> Any:
        if chunk is None:
            return self
        return chunk.__dict__.get("_retransmit", False)

    def __set__(self, chunk: Any, value: bool) -> None:
        global _marks
        if value:
            _marks += 1
        chunk.__dict__["_retransmit"] = value


async def _transmit(self: Any) -> None:
    """aiortc 1.16.0's ``_transmit``; only the retransmit scan is guarded (see the module doc)."""
    # send FORWARD TSN
    if self._forward_tsn_chunk is not None:
        await self._send_chunk(self._forward_tsn_chunk)
        self._forward_tsn_chunk = None

        # ensure T3 is running
        if not self._t3_handle:
            self._t3_start()

    # limit burst size
    if self._fast_recovery_exit is not None:
        burst_size = 2 * sctp.USERDATA_MAX_LENGTH
    else:
        burst_size = 4 * sctp.USERDATA_MAX_LENGTH
    cwnd = min(self._flight_size + burst_size, self._cwnd)

    # retransmit, unless no chunk can be marked since this transport's last complete scan
    if getattr(self, "_f0mesh_clean_at", None) != _marks:
        scan_from = _marks
        retransmit_earliest = True
        for chunk in self._sent_queue:
            if chunk._retransmit:
                if self._fast_recovery_transmit:
                    self._fast_recovery_transmit = False
                elif self._flight_size >= cwnd:
                    return
                self._flight_size_increase(chunk)

                chunk._misses = 0
                chunk._retransmit = False
                chunk._sent_count += 1
                await self._send_chunk(chunk)
                if retransmit_earliest:
                    # restart the T3 timer as the earliest outstanding TSN
                    # is being retransmitted
                    self._t3_restart()
            retransmit_earliest = False
        # a mark while this scan awaited a send may be behind us in the queue: scan again next time
        self._f0mesh_clean_at = scan_from if _marks == scan_from else None

    while self._outbound_queue and self._flight_size < cwnd:
        chunk = self._outbound_queue.popleft()
        self._sent_queue.append(chunk)
        self._flight_size_increase(chunk)

        # update counters
        chunk._sent_count += 1
        chunk._sent_time = time.time()

        await self._send_chunk(chunk)
        if not self._t3_handle:
            self._t3_start()


def install() -> bool:
    """Install the guarded sender once per process; False if aiortc's method is not the copied one."""
    global _installed
    if _installed is not None:
        return _installed
    try:
        source = inspect.getsource(sctp.RTCSctpTransport._transmit)
    except (OSError, TypeError):
        source = ""
    _installed = hashlib.sha256(source.encode()).hexdigest() == COPIED_FROM
    if not _installed:
        log.info("aiortc's SCTP _transmit is not the version f0mesh's fast path was copied from: left as is")
        return False
    sctp.DataChunk._retransmit = _RetransmitFlag()  # type: ignore[assignment]
    sctp.RTCSctpTransport._transmit = _transmit  # type: ignore[method-assign]
    return True
