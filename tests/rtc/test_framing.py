"""Framing of the ctl channel: unit tests over a fake channel, then two real aiortc peers in-process."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import random
import struct
from collections import defaultdict
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aiortc import RTCConfiguration, RTCDataChannel, RTCPeerConnection

from f0mesh.errors import MessageTooLargeError
from f0mesh.rtc.framing import (
    BACKLOG_ENTRY_OVERHEAD,
    CHUNK_HEADER_SIZE,
    DEFAULT_CHUNK_SIZE,
    MAX_PARTIAL_MESSAGES,
    ChannelClosed,
    FramedChannel,
    MessageTooLarge,
)

CS = DEFAULT_CHUNK_SIZE
STEP = CS - CHUNK_HEADER_SIZE  # payload bytes per chunk frame


def start_frame(msg_id: int, total: int, body: bytes = b"") -> bytes:
    return struct.pack(">BII", 0x02, msg_id, total) + body


def more_frame(msg_id: int, offset: int, body: bytes) -> bytes:
    return struct.pack(">BII", 0x03, msg_id, offset) + body


def batch_frame(*payloads: bytes) -> bytes:
    return b"\x01" + b"".join(struct.pack(">H", len(p)) + p for p in payloads)


class FakeChannel:
    """Behaves like aiortc's RTCDataChannel where framing can tell: send() adds to bufferedAmount
    (unless auto_drain), drain() takes it away and fires bufferedamountlow on crossing the threshold."""

    def __init__(self, *, auto_drain: bool = True, state: str = "open") -> None:
        self.readyState = state
        self.bufferedAmount = 0
        self.bufferedAmountLowThreshold = 0
        self.auto_drain = auto_drain
        self.sent: list[bytes] = []
        self.peer: FakeChannel | None = None
        self._listeners: dict[str, list[Callable[..., Any]]] = defaultdict(list)

    def on(self, event: str, f: Callable[..., Any]) -> Callable[..., Any]:
        self._listeners[event].append(f)
        return f

    def emit(self, event: str, *args: Any) -> None:
        for f in list(self._listeners[event]):
            f(*args)

    def send(self, data: bytes) -> None:
        if self.readyState != "open":
            raise RuntimeError("InvalidStateError")
        assert type(data) is bytes  # aiortc refuses bytearray and memoryview
        self.sent.append(data)
        if not self.auto_drain:
            self.bufferedAmount += len(data)
        elif self.peer is not None:
            self.peer.emit("message", data)

    def drain(self, amount: int) -> None:
        crossing = self.bufferedAmount > self.bufferedAmountLowThreshold >= self.bufferedAmount - amount
        self.bufferedAmount -= amount
        if crossing:
            self.emit("bufferedamountlow")

    def open(self) -> None:
        self.readyState = "open"
        self.emit("open")

    def close(self) -> None:
        self.readyState = "closed"
        self.emit("close")


def linked_pair(**kwargs: Any) -> tuple[FramedChannel, FramedChannel, FakeChannel, list[bytes]]:
    """A sender whose frames go straight into a receiver; returns (tx, rx, tx channel, received)."""
    tx_chan, rx_chan = FakeChannel(), FakeChannel()
    tx_chan.peer = rx_chan
    received: list[bytes] = []
    tx = FramedChannel(tx_chan, on_message=lambda m: None, **kwargs)
    rx = FramedChannel(rx_chan, on_message=received.append, **kwargs)
    return tx, rx, tx_chan, received


def receiver(**kwargs: Any) -> tuple[FramedChannel, FakeChannel, list[bytes]]:
    chan = FakeChannel()
    received: list[bytes] = []
    return FramedChannel(chan, on_message=received.append, **kwargs), chan, received


async def settle(turns: int = 20) -> None:
    """Let the writer task run as far as it can without anything external happening."""
    for _ in range(turns):
        await asyncio.sleep(0)


# ---- unit tests over the fake channel -----------------------------------------------------------


@pytest.mark.parametrize(
    ("size", "frames"),
    [
        (0, 1),
        (1, 1),
        (CS - 3, 1),  # largest message that fits one BATCH frame
        (CS - 2, 2),  # smallest message that must be chunked
        (2 * STEP - 1, 2),
        (2 * STEP, 2),
        (2 * STEP + 1, 3),
        (5 * 1024 * 1024, -(-5 * 1024 * 1024 // STEP)),
    ],
)
async def test_round_trip_at_chunk_boundaries(size: int, frames: int) -> None:
    tx, rx, tx_chan, received = linked_pair()
    payload = random.Random(size).randbytes(size)
    await tx.send(payload)
    assert len(received) == 1
    assert hashlib.sha256(received[0]).digest() == hashlib.sha256(payload).digest()
    assert len(tx_chan.sent) == frames
    assert max(len(f) for f in tx_chan.sent) <= CS
    assert (tx.stats.messages_out, tx.stats.bytes_out, tx.stats.frames_out) == (1, size, frames)
    assert (rx.stats.messages_in, rx.stats.bytes_in, rx.stats.frames_in) == (1, size, frames)
    assert rx.reassembly_bytes == 0
    await tx.close()
    await rx.close()


async def test_batching_packs_small_messages_in_order() -> None:
    tx, rx, tx_chan, received = linked_pair()
    rng = random.Random(7)
    messages = [i.to_bytes(4, "big") + rng.randbytes(rng.randrange(0, 200)) for i in range(2000)]
    await asyncio.gather(*(tx.send(m) for m in messages))
    assert received == messages
    wire_bytes = sum(2 + len(m) for m in messages)
    assert len(tx_chan.sent) <= wire_bytes // (CS - 1) + 2  # frames are full, not one per message
    assert all(len(f) <= CS for f in tx_chan.sent)
    assert tx.stats.messages_out == rx.stats.messages_in == len(messages)
    await tx.close()
    await rx.close()


async def test_order_preserved_across_batched_and_chunked_messages() -> None:
    tx, rx, _, received = linked_pair()
    messages = [b"a", b"b" * (3 * CS), b"c", b"", b"d" * (CS - 3), b"e" * (CS - 2), b"f"]
    await asyncio.gather(*(tx.send(m) for m in messages))
    assert received == messages
    await tx.close()
    await rx.close()


async def test_cancelled_send_is_withdrawn_before_it_is_written() -> None:
    chan = FakeChannel(auto_drain=False)
    chan.bufferedAmount = 10**6
    tx = FramedChannel(chan, on_message=lambda m: None)
    first = asyncio.create_task(tx.send(b"first"))
    second = asyncio.create_task(tx.send(b"second"))
    await settle()
    first.cancel()
    await settle()
    chan.drain(10**6)
    await asyncio.wait_for(second, 5)
    assert first.cancelled()
    assert len(chan.sent) == 1
    assert chan.sent[0] == batch_frame(b"second")
    await tx.close()


async def test_oversize_refused_at_sender() -> None:
    chan = FakeChannel()
    tx = FramedChannel(chan, on_message=lambda m: None, max_message_size=1000)
    with pytest.raises(MessageTooLarge) as caught:
        await tx.send(b"x" * 1001)
    err = caught.value
    assert isinstance(err, MessageTooLargeError)
    assert (err.size, err.limit, err.status, err.code) == (1001, 1000, 413, "too_large")
    assert "1001" in str(err) and "1000" in str(err)
    assert chan.sent == []
    await tx.send(b"x" * 1000)
    assert tx.stats.messages_out == 1
    await tx.close()


async def test_oversize_announced_by_peer_dropped_at_receiver(caplog: pytest.LogCaptureFixture) -> None:
    violations: list[str] = []
    rx, chan, received = receiver(max_message_size=1000, chunk_size=256, on_violation=violations.append)
    with caplog.at_level(logging.WARNING, logger="f0mesh.rtc.framing"):
        chan.emit("message", start_frame(5, 10**9, b"x" * 200))
        for offset in range(200, 1000, 200):
            chan.emit("message", more_frame(5, offset, b"x" * 200))
        chan.emit("message", batch_frame(b"y" * 1001, b"ok"))
    assert rx.stats.dropped_oversize == 2
    assert rx.stats.dropped_frames == 4  # the rest of the refused message, discarded quietly
    assert rx.stats.dropped_garbage == 0
    assert rx.reassembly_bytes == 0
    assert received == [b"ok"]
    assert violations == ["oversize", "oversize"]  # the rest of the refused message is not held against it
    assert any("1000000000-byte message" in r.getMessage() for r in caplog.records)
    await rx.close()


@pytest.mark.parametrize(
    "frame",
    [
        b"",
        "a text message",
        b"\x09junk",
        b"\x01",  # batch without entries
        b"\x01\x00",  # truncated length field
        b"\x01\x00\x01a\x00\x05ab",  # second entry overruns: the valid first one is not delivered either
        b"\x02\x00\x00",  # chunk header cut short
        more_frame(77, 0, b"orphan"),
        start_frame(1, 3, b"four"),
    ],
)
async def test_garbage_frames_dropped(frame: bytes | str) -> None:
    violations: list[str] = []
    rx, chan, received = receiver(on_violation=violations.append)
    chan.emit("message", frame)
    assert rx.stats.dropped_garbage == 1
    assert received == []
    assert violations == ["garbage"]
    chan.emit("message", batch_frame(b"still works"))
    assert received == [b"still works"]
    assert violations == ["garbage"]
    await rx.close()


async def test_a_flood_of_garbage_costs_one_warning_per_reason(caplog: pytest.LogCaptureFixture) -> None:
    violations: list[str] = []
    rx, chan, _ = receiver(max_message_size=1000, on_violation=violations.append)
    with caplog.at_level(logging.WARNING, logger="f0mesh.rtc.framing"):
        for i in range(500):
            chan.emit("message", b"\x09junk")
            chan.emit("message", start_frame(i, 10**6))
    assert rx.stats.dropped_garbage == 500 and rx.stats.dropped_oversize == 500
    assert violations.count("garbage") == 500 and violations.count("oversize") == 500
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2, lines
    await rx.close()


async def test_a_failing_violation_callback_does_not_stop_reception() -> None:
    def broken(what: str) -> None:
        raise RuntimeError("trust layer gone")

    rx, chan, received = receiver(on_violation=broken)
    chan.emit("message", b"\x09junk")
    chan.emit("message", batch_frame(b"still works"))
    assert received == [b"still works"]
    await rx.close()


async def test_broken_chunk_stream_freed() -> None:
    rx, chan, received = receiver(chunk_size=256)
    chan.emit("message", start_frame(1, 600, b"a" * 200))
    chan.emit("message", more_frame(1, 300, b"a" * 200))  # skips 100 bytes
    chan.emit("message", more_frame(1, 200, b"a" * 200))  # the stream is already gone
    chan.emit("message", start_frame(2, 600, b"b" * 200))
    chan.emit("message", start_frame(2, 600, b"b" * 200))  # restarted while incomplete
    chan.emit("message", start_frame(3, 300, b"c" * 200))
    chan.emit("message", more_frame(3, 200, b"c" * 200))  # runs past the announced length
    chan.emit("message", start_frame(4, 300, b"d" * 200))
    chan.emit("message", more_frame(4, 200, b""))  # makes no progress
    assert rx.stats.dropped_garbage == 4
    assert rx.stats.dropped_frames == 1
    assert rx.reassembly_bytes == 0
    assert received == []
    await rx.close()


async def test_stalled_stream_freed_after_timeout() -> None:
    rx, chan, received = receiver(stall_timeout_s=0.05)
    chan.emit("message", start_frame(9, 100_000, b"z" * 1000))
    assert rx.reassembly_bytes == 100_000
    await asyncio.sleep(0.2)  # loop timers fire in deadline order, so the stall timer has run by now
    assert rx.stats.dropped_stalled == 1
    assert rx.reassembly_bytes == 0
    chan.emit("message", more_frame(9, 1000, b"z" * 1000))  # the sender wakes up too late
    assert rx.stats.dropped_frames == 1
    assert received == []
    chan.emit("message", start_frame(10, 2000, b"w" * 1000))
    chan.emit("message", more_frame(10, 1000, b"w" * 1000))
    assert received == [b"w" * 2000]
    assert rx.stats.dropped_stalled == 1
    await rx.close()


async def test_reassembly_limit_enforced() -> None:
    rx, chan, received = receiver(max_message_size=1000, reassembly_limit_bytes=1500, chunk_size=256)
    chan.emit("message", start_frame(1, 1000, b"a" * 200))
    chan.emit("message", start_frame(2, 600, b"b" * 200))  # 1600 > 1500 reserved
    chan.emit("message", more_frame(2, 200, b"b" * 200))
    chan.emit("message", start_frame(3, 500, b"c" * 200))  # exactly 1500
    assert rx.stats.dropped_over_limit == 1
    assert rx.stats.dropped_frames == 1
    assert rx.reassembly_bytes == 1500
    for offset in range(200, 1000, 200):
        chan.emit("message", more_frame(1, offset, b"a" * 200))
    assert received == [b"a" * 1000]
    assert rx.reassembly_bytes == 500
    await rx.close()
    assert rx.reassembly_bytes == 0


async def test_partial_message_count_limited() -> None:
    rx, chan, _ = receiver()
    for msg_id in range(MAX_PARTIAL_MESSAGES + 1):
        chan.emit("message", start_frame(msg_id, 2))
    assert rx.stats.dropped_over_limit == 1
    assert rx.reassembly_bytes == 2 * MAX_PARTIAL_MESSAGES
    await rx.close()


async def test_send_waits_while_buffer_is_high_and_resumes_on_low() -> None:
    chan = FakeChannel(auto_drain=False)
    tx = FramedChannel(chan, on_message=lambda m: None, chunk_size=256, high_water=1000, low_water=200)
    chan.bufferedAmount = 5000  # filled by someone else
    small = asyncio.create_task(tx.send(b"hello"))
    await settle()
    assert not small.done()
    assert chan.sent == []
    assert chan.bufferedAmountLowThreshold == 200
    chan.drain(4000)  # 1000: not yet low, so no event and no sending
    await settle()
    assert chan.sent == []
    chan.drain(800)
    await asyncio.wait_for(small, 5)
    assert chan.sent == [batch_frame(b"hello")]

    big = asyncio.create_task(tx.send(bytes(20_000)))
    peak = 0
    async with asyncio.timeout(10):
        while not big.done():
            await settle()
            peak = max(peak, chan.bufferedAmount)
            assert chan.bufferedAmount <= 1000 + 256  # the buffer does not grow while send() waits
            chan.drain(chan.bufferedAmount)
    await big
    assert peak > 1000  # it did fill up to the mark, so the waiting was exercised
    assert sum(len(f) - CHUNK_HEADER_SIZE for f in chan.sent[1:]) == 20_000
    await tx.close()


@pytest.mark.parametrize("closer", ["channel", "framing"])
async def test_close_while_waiting_raises_channel_closed(closer: str) -> None:
    chan = FakeChannel(auto_drain=False)
    chan.bufferedAmount = 10**6
    tx = FramedChannel(chan, on_message=lambda m: None)
    pending = [asyncio.create_task(tx.send(b"x" * size)) for size in (10, 100_000, 20)]
    await settle()
    if closer == "channel":
        chan.close()
    else:
        await tx.close()
    for task in pending:
        with pytest.raises(ChannelClosed):
            await asyncio.wait_for(task, 2)
    with pytest.raises(ChannelClosed):
        await tx.send(b"later")
    await tx.close()
    assert asyncio.all_tasks() == {asyncio.current_task()}


async def test_close_mid_message_fails_the_sender() -> None:
    chan = FakeChannel(auto_drain=False)
    tx = FramedChannel(chan, on_message=lambda m: None, chunk_size=256, high_water=1000, low_water=200)
    task = asyncio.create_task(tx.send(bytes(10_000)))
    await settle()
    assert 0 < len(chan.sent) < 10_000 // 256
    chan.close()
    with pytest.raises(ChannelClosed):
        await asyncio.wait_for(task, 2)
    await tx.close()


async def test_waits_for_a_connecting_channel_to_open() -> None:
    chan = FakeChannel(state="connecting")
    tx = FramedChannel(chan, on_message=lambda m: None)
    task = asyncio.create_task(tx.send(b"early"))
    await settle()
    assert chan.sent == []
    chan.open()
    await asyncio.wait_for(task, 5)
    assert chan.sent == [batch_frame(b"early")]
    await tx.close()


async def test_async_handler_awaited_in_order_and_errors_contained() -> None:
    chan = FakeChannel()
    seen: list[bytes] = []
    all_handled = asyncio.Event()

    async def handler(message: bytes) -> None:
        try:
            await asyncio.sleep(0.001 * (message[0] % 3))
            if message == b"\x05boom":
                raise ValueError("handler bug")
            seen.append(message)
        finally:
            if message[0] == 9:
                all_handled.set()

    rx = FramedChannel(chan, on_message=handler)
    messages = [bytes([i]) + b"boom" for i in range(10)]
    chan.emit("message", batch_frame(*messages))
    await asyncio.wait_for(all_handled.wait(), 5)
    assert seen == messages[:5] + messages[6:]
    assert rx.stats.handler_errors == 1
    await rx.close()
    assert asyncio.all_tasks() == {asyncio.current_task()}


async def test_async_handler_backlog_bounded() -> None:
    chan = FakeChannel()
    release, done = asyncio.Event(), asyncio.Event()
    seen: list[bytes] = []

    async def handler(message: bytes) -> None:
        await release.wait()
        seen.append(message)
        if message[0] == ord("d"):
            done.set()

    rx = FramedChannel(chan, on_message=handler, delivery_backlog_bytes=3 * BACKLOG_ENTRY_OVERHEAD + 250)
    chan.emit("message", batch_frame(b"a" * 100, b"b" * 100, b"c" * 100, b"d" * 50))
    assert rx.stats.dropped_backlog == 1
    release.set()
    await asyncio.wait_for(done.wait(), 5)
    assert seen == [b"a" * 100, b"b" * 100, b"d" * 50]
    await rx.close()


async def test_sync_handler_error_does_not_escape() -> None:
    chan = FakeChannel()

    def handler(message: bytes) -> None:
        raise RuntimeError("handler bug")

    rx = FramedChannel(chan, on_message=handler)
    chan.emit("message", batch_frame(b"a", b"b"))
    assert rx.stats.handler_errors == 2
    assert rx.stats.messages_in == 2
    await rx.close()


# ---- two real aiortc peers in one process --------------------------------------------------------


@pytest.fixture
async def rtc_pair() -> AsyncIterator[tuple[RTCDataChannel, RTCDataChannel]]:
    """Two RTCPeerConnections joined over the host's interfaces by an in-process offer/answer."""
    pcs = [RTCPeerConnection(RTCConfiguration(iceServers=[])) for _ in range(2)]
    try:
        channels = [pc.createDataChannel("ctl", negotiated=True, id=0, ordered=True) for pc in pcs]
        opened = [asyncio.Event() for _ in channels]
        for channel, event in zip(channels, opened, strict=True):
            channel.on("open", event.set)
        await pcs[0].setLocalDescription(await pcs[0].createOffer())
        await pcs[1].setRemoteDescription(pcs[0].localDescription)
        await pcs[1].setLocalDescription(await pcs[1].createAnswer())
        await pcs[0].setRemoteDescription(pcs[1].localDescription)
        await asyncio.wait_for(asyncio.gather(*(e.wait() for e in opened)), 30)
        yield channels[0], channels[1]
    finally:
        for pc in pcs:
            await pc.close()


async def test_real_datachannel_big_message_and_batching(
    rtc_pair: tuple[RTCDataChannel, RTCDataChannel],
) -> None:
    a, b = rtc_pair
    inbox: asyncio.Queue[bytes] = asyncio.Queue()
    tx = FramedChannel(a, on_message=lambda m: None)
    rx = FramedChannel(b, on_message=inbox.put_nowait)
    raw_frames = 0

    def count_frame(_: bytes) -> None:
        nonlocal raw_frames
        raw_frames += 1

    b.on("message", count_frame)

    samples: list[int] = []
    real_send = a.send

    def sampling_send(data: bytes) -> None:
        real_send(data)
        samples.append(a.bufferedAmount)

    a.send = sampling_send  # type: ignore[method-assign]

    payload = random.Random(1).randbytes(5 * 1024 * 1024)
    await asyncio.wait_for(tx.send(payload), 60)
    got = await asyncio.wait_for(inbox.get(), 60)
    assert hashlib.sha256(got).hexdigest() == hashlib.sha256(payload).hexdigest()
    assert len(samples) == tx.stats.frames_out
    assert max(samples) <= tx.high_water + tx.chunk_size
    assert max(samples) > tx.high_water // 2  # backpressure was really exercised

    raw_frames = 0
    count = 10_000
    await asyncio.wait_for(
        asyncio.gather(*(tx.send(i.to_bytes(4, "big") + b"m" * 40) for i in range(count))), 60
    )
    async with asyncio.timeout(60):
        order = [int.from_bytes((await inbox.get())[:4], "big") for _ in range(count)]
    assert order == list(range(count))
    assert raw_frames * 20 <= count
    assert rx.stats.dropped_garbage == rx.stats.dropped_frames == 0
    await tx.close()
    await rx.close()
