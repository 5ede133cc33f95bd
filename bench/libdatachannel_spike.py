"""Spike for issue #25: libdatachannel (C++, via pylibdatachannel) against aiortc, same process, same work.

Bench only, never an f0mesh dependency: ``bench/.ldc-lib`` gets the wheel with ``pip install --target``
on first use. Run inside a network namespace with only loopback (``suites`` does it with ``unshare``):
both libraries gather host candidates on every interface, and no traffic may leave the test's own
addresses. Prints one JSON object: throughput and CPU per MB (one channel, 16 KiB messages, the same
application-level window for both, since pylibdatachannel 0.2.0 has no bufferedAmount), setup time,
RSS per connection (both ends in this process), and whether a libdatachannel offer opens a channel
with an aiortc answerer.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

LIB = Path(__file__).resolve().parent / ".ldc-lib"
MSG = 16 * 1024
WINDOW = 1 << 20  # bytes in flight before the sender waits for the receiver's count
ACK_EVERY = 256 * 1024
TIMEOUT_S = 30.0


def _rss_kb() -> int:
    with open("/proc/self/status") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith("VmRSS:"))


def _cpu_s() -> float:
    return time.process_time()


# -- libdatachannel --------------------------------------------------------------------------


def _ldc() -> Any:
    sys.path.insert(0, str(LIB))
    import pylibdatachannel

    return pylibdatachannel


class LdcPair:
    """Two libdatachannel peer connections in this process, signalled directly, one channel."""

    def __init__(self, ldc: Any) -> None:
        self.a = ldc.PeerConnection(ldc.Configuration([]))
        self.b = ldc.PeerConnection(ldc.Configuration([]))
        self.a.on_local_candidate(self.b.add_remote_candidate)
        self.b.on_local_candidate(self.a.add_remote_candidate)
        self.a.on_local_description(self.b.set_remote_description)
        self.b.on_local_description(self.a.set_remote_description)
        self.remote: Any = None
        self._remote_ready = threading.Event()
        self._opened = threading.Event()
        self.received = 0
        self._acked = 0
        self._cond = threading.Condition()

        def on_channel(channel: Any) -> None:
            self.remote = channel
            channel.on_message(self._on_data)
            self._remote_ready.set()

        self.b.on_data_channel(on_channel)
        self.channel = self.a.create_data_channel("bench")
        self.channel.on_open(self._opened.set)
        self.channel.on_message(self._on_ack)

    def wait_open(self) -> None:
        if not (self._opened.wait(TIMEOUT_S) and self._remote_ready.wait(TIMEOUT_S)):
            raise TimeoutError("libdatachannel channel did not open")

    def _on_data(self, data: Any) -> None:
        before = self.received // ACK_EVERY
        self.received += len(data)
        if self.received // ACK_EVERY != before:
            self.remote.send(self.received.to_bytes(8, "big"))

    def _on_ack(self, data: Any) -> None:
        with self._cond:
            self._acked = int.from_bytes(data, "big")
            self._cond.notify_all()

    def send(self, total: int) -> float:
        payload = b"x" * MSG
        start_received = self.received
        with self._cond:
            self._acked = start_received
        t0 = time.perf_counter()
        sent = 0
        while sent < total:
            limit = start_received + sent - WINDOW
            with self._cond:
                ok = self._cond.wait_for(lambda: self._acked > limit, TIMEOUT_S)  # noqa: B023 (used at once)
            if not ok:
                raise TimeoutError("libdatachannel receiver stopped acknowledging")
            self.channel.send(payload)
            sent += MSG
        deadline = time.monotonic() + TIMEOUT_S
        while self.received - start_received < total:
            if time.monotonic() > deadline:
                raise TimeoutError("libdatachannel receiver did not get everything")
            time.sleep(0.001)
        return time.perf_counter() - t0

    def close(self) -> None:
        self.a.close()
        self.b.close()


# -- aiortc ------------------------------------------------------------------------------------


class AiortcPair:
    """Two aiortc peer connections in this process, the same channel and window as LdcPair."""

    async def open(self) -> None:
        from aiortc import RTCConfiguration, RTCPeerConnection

        self.a = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.b = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.received = 0
        self.acked = 0
        self._ack = asyncio.Event()
        remote_ready = asyncio.Event()
        self.channel = self.a.createDataChannel("bench")
        opened = asyncio.Event()
        self.channel.on("open", opened.set)

        @self.channel.on("message")
        def on_ack(data: bytes) -> None:
            self.acked = int.from_bytes(data, "big")
            self._ack.set()

        @self.b.on("datachannel")
        def on_channel(channel: Any) -> None:
            self.remote = channel

            @channel.on("message")
            def on_data(data: bytes) -> None:
                before = self.received // ACK_EVERY
                self.received += len(data)
                if self.received // ACK_EVERY != before:
                    channel.send(self.received.to_bytes(8, "big"))

            remote_ready.set()

        await self.a.setLocalDescription(await self.a.createOffer())
        await self.b.setRemoteDescription(self.a.localDescription)
        await self.b.setLocalDescription(await self.b.createAnswer())
        await self.a.setRemoteDescription(self.b.localDescription)
        await asyncio.wait_for(asyncio.gather(opened.wait(), remote_ready.wait()), TIMEOUT_S)

    async def send(self, total: int) -> float:
        payload = b"x" * MSG
        start = self.received
        self.acked = start
        t0 = time.perf_counter()
        sent = 0
        while sent < total:
            while start + sent - self.acked >= WINDOW:
                self._ack.clear()
                await asyncio.wait_for(self._ack.wait(), TIMEOUT_S)
            self.channel.send(payload)
            sent += MSG
            if sent % (16 * MSG) == 0:
                await asyncio.sleep(0)
        deadline = time.monotonic() + TIMEOUT_S
        while self.received - start < total:
            if time.monotonic() > deadline:
                raise TimeoutError("aiortc receiver did not get everything")
            await asyncio.sleep(0.001)
        return time.perf_counter() - t0

    async def close(self) -> None:
        await self.a.close()
        await self.b.close()


# -- interop -----------------------------------------------------------------------------------


async def interop(ldc: Any) -> dict[str, Any]:
    """A libdatachannel offer (candidates gathered into the SDP) answered by aiortc."""
    from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription

    loop = asyncio.get_running_loop()
    offerer = ldc.PeerConnection(ldc.Configuration([]))
    gathered = asyncio.Event()
    opened = asyncio.Event()
    echoed: asyncio.Future[bytes] = loop.create_future()
    offerer.on_gathering_state_change(
        lambda s: loop.call_soon_threadsafe(gathered.set) if str(s).endswith("COMPLETE") else None
    )
    channel = offerer.create_data_channel("interop")
    channel.on_open(lambda: loop.call_soon_threadsafe(opened.set))
    channel.on_message(
        lambda m: loop.call_soon_threadsafe(lambda: echoed.done() or echoed.set_result(bytes(m)))
    )
    answerer = RTCPeerConnection(RTCConfiguration(iceServers=[]))

    @answerer.on("datachannel")
    def on_channel(ch: Any) -> None:
        ch.on("message", lambda m: ch.send(b"echo:" + (m if isinstance(m, bytes) else m.encode())))

    try:
        await asyncio.wait_for(gathered.wait(), TIMEOUT_S)
        offer = offerer.local_description
        await answerer.setRemoteDescription(RTCSessionDescription(sdp=offer.description, type="offer"))
        await answerer.setLocalDescription(await answerer.createAnswer())
        offerer.set_remote_description(
            ldc.Description(answerer.localDescription.sdp, ldc.DescriptionType.ANSWER)
        )
        await asyncio.wait_for(opened.wait(), TIMEOUT_S)
        channel.send(b"ping")
        reply = await asyncio.wait_for(echoed, TIMEOUT_S)
        return {"ok": reply == b"echo:ping", "detail": "libdatachannel offer, aiortc answer, echo over SCTP"}
    except Exception as exc:  # the spike reports what failed instead of failing
        return {"ok": False, "detail": f"{type(exc).__name__}: {exc}"[:300]}
    finally:
        offerer.close()
        await answerer.close()


# -- main --------------------------------------------------------------------------------------


async def main(total: int, repeats: int, links: int) -> dict[str, Any]:
    ldc = _ldc()
    out: dict[str, Any] = {"message_bytes": MSG, "window_bytes": WINDOW, "payload_bytes": total}
    rates: dict[str, list[float]] = {"aiortc": [], "libdatachannel": []}
    cpu_mb: dict[str, list[float]] = {"aiortc": [], "libdatachannel": []}
    setup: dict[str, list[float]] = {"aiortc": [], "libdatachannel": []}
    for _ in range(repeats):
        t0 = time.perf_counter()
        apair = AiortcPair()
        await apair.open()
        setup["aiortc"].append(1000 * (time.perf_counter() - t0))
        await apair.send(MSG * 64)  # warm-up
        c0 = _cpu_s()
        elapsed = await apair.send(total)
        cpu_mb["aiortc"].append((_cpu_s() - c0) / (total / 1e6))
        rates["aiortc"].append(total / 1e6 / elapsed)
        await apair.close()

        t0 = time.perf_counter()
        lpair = LdcPair(ldc)
        await asyncio.to_thread(lpair.wait_open)
        setup["libdatachannel"].append(1000 * (time.perf_counter() - t0))
        await asyncio.to_thread(lpair.send, MSG * 64)
        c0 = _cpu_s()
        elapsed = await asyncio.to_thread(lpair.send, total)
        cpu_mb["libdatachannel"].append((_cpu_s() - c0) / (total / 1e6))
        rates["libdatachannel"].append(total / 1e6 / elapsed)
        lpair.close()
    out["throughput_mb_s"] = rates
    out["cpu_s_per_mb"] = cpu_mb
    out["setup_ms"] = setup

    # memory per connection end: `links` pairs of each, opened after one warm-up pair, RSS per end
    per_end: dict[str, float] = {}
    warm = LdcPair(ldc)
    await asyncio.to_thread(warm.wait_open)
    await asyncio.sleep(1.0)
    before = _rss_kb()
    pairs = []
    for _ in range(links):
        # one at a time: pylibdatachannel 0.2.0 holds the GIL in its calls, so creating a connection
        # while another one's ICE thread waits for the GIL in a callback deadlocks (seen here)
        pairs.append(LdcPair(ldc))
        await asyncio.to_thread(pairs[-1].wait_open)
    await asyncio.sleep(2.0)
    per_end["libdatachannel"] = (_rss_kb() - before) / (2 * links)
    for pair in [warm, *pairs]:
        pair.close()
    warm_a = AiortcPair()
    await warm_a.open()
    await asyncio.sleep(1.0)
    before = _rss_kb()
    apairs = []
    for _ in range(links):
        pair = AiortcPair()
        await pair.open()
        apairs.append(pair)
    await asyncio.sleep(2.0)
    per_end["aiortc"] = (_rss_kb() - before) / (2 * links)
    for pair in [warm_a, *apairs]:
        await pair.close()
    out["rss_kb_per_connection_end"] = per_end
    out["interop"] = await interop(ldc)
    out["medians"] = {
        "throughput_mb_s": {k: statistics.median(v) for k, v in rates.items()},
        "cpu_s_per_mb": {k: statistics.median(v) for k, v in cpu_mb.items()},
        "setup_ms": {k: statistics.median(v) for k, v in setup.items()},
    }
    return out


if __name__ == "__main__":
    total_mib, reps, n_links = (int(a) for a in (sys.argv[1:] + ["16", "2", "8"][len(sys.argv) - 1 :])[:3])
    print(json.dumps(asyncio.run(main(total_mib << 20, reps, n_links))))
