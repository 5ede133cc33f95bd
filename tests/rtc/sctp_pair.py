"""Two aiortc peer connections in this process with one reliable ordered channel between them."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from aiortc import RTCConfiguration, RTCDataChannel, RTCPeerConnection
from aiortc import rtcsctptransport as sctp

from f0mesh.rtc import udp_buffers

OPEN_TIMEOUT_S = 20.0
TRANSFER_TIMEOUT_S = 60.0


@dataclass
class Pair:
    a: RTCPeerConnection
    b: RTCPeerConnection
    tx: RTCDataChannel  # a's end
    rx: RTCDataChannel  # b's end

    async def transfer(self, messages: list[bytes]) -> list[bytes]:
        """Send every message from a to b at once; what b received, in order, once it has them all."""
        got: list[bytes] = []
        done = asyncio.get_running_loop().create_future()

        def on_message(data: bytes) -> None:
            got.append(data)
            if len(got) == len(messages) and not done.done():
                done.set_result(None)

        self.rx.on("message", on_message)
        try:
            for message in messages:
                self.tx.send(message)
            await asyncio.wait_for(done, TRANSFER_TIMEOUT_S)
        finally:
            self.rx.remove_listener("message", on_message)
        return got


@contextlib.asynccontextmanager
async def channel_pair() -> AsyncIterator[Pair]:
    a = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    b = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    try:
        tx = a.createDataChannel("ctl", negotiated=True, id=0, ordered=True)
        rx = b.createDataChannel("ctl", negotiated=True, id=0, ordered=True)
        opened = asyncio.Event()
        tx.on("open", opened.set)
        await a.setLocalDescription(await a.createOffer())
        await b.setRemoteDescription(a.localDescription)
        await b.setLocalDescription(await b.createAnswer())
        await a.setRemoteDescription(b.localDescription)
        await asyncio.wait_for(opened.wait(), OPEN_TIMEOUT_S)
        for pc in (a, b):  # as a link does: aioice's 256 KiB would drop datagrams of a full window
            sock = udp_buffers.link_socket(pc)
            assert sock is not None
            udp_buffers.enlarge(sock)
        yield Pair(a, b, tx, rx)
    finally:
        await a.close()
        await b.close()


def lose_every(monkeypatch: Any, every: int) -> dict[str, int]:
    """Every ``every``-th DATA chunk's first transmission is lost on the way out; the counts of what
    was sent (first transmissions, dropped, sent again, SACKs, SACKs reporting a gap) fill in as it goes."""
    original = sctp.RTCSctpTransport._send_chunk
    sent = {"data": 0, "dropped": 0, "again": 0, "sack": 0, "gap_sacks": 0}

    async def lossy(self: Any, chunk: Any) -> None:
        if isinstance(chunk, sctp.SackChunk):
            sent["sack"] += 1
            sent["gap_sacks"] += bool(chunk.gaps)
        if isinstance(chunk, sctp.DataChunk):
            if chunk._sent_count > 1:
                sent["again"] += 1
            else:
                sent["data"] += 1
                if sent["data"] % every == 0:
                    sent["dropped"] += 1
                    return
        await original(self, chunk)

    monkeypatch.setattr(sctp.RTCSctpTransport, "_send_chunk", lossy)
    return sent
