"""Framing for a link's reliable, ordered ``ctl`` DataChannel: chunking, batching, backpressure.

Why a framing layer at all: one DataChannel message should stay small (16 KiB is the size every
WebRTC stack accepts, and a big message blocks the channel until it is through), aiortc spends
~160 µs of CPU per SCTP packet so many small messages must share packets, and aiortc's
``send()`` never refuses data, so an unchecked sender grows memory and queueing delay without bound.

Wire format: every DataChannel message is one frame; integers are big-endian.

    BATCH  0x01 | (length:u16 | payload)+                 one or more whole messages, in send order
    START  0x02 | msg_id:u32 | total_length:u32 | data     first chunk of a message too big for a BATCH
    MORE   0x03 | msg_id:u32 | offset:u32 | data           next chunk; offset = bytes of it sent before

A message of up to ``chunk_size - 3`` bytes travels inside a BATCH (3 = type byte + length), a
larger one as one START and as many MORE frames as needed, each at most ``chunk_size`` bytes.
START announces the total length, so a receiver refuses an oversize or over-budget message before
holding any of it; MORE carries the offset rather than an index, so a lost, repeated or truncated
chunk is detected whatever chunk size the sender chose. This sender never interleaves messages
(order is preserved), but the receiver keys partial messages by msg_id and so tolerates it.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import struct
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from f0mesh.errors import ConfigError, MessageTooLargeError, PeerError
from f0mesh.log_throttle import LogThrottle
from f0mesh.rtc.resources import MemoryScope

log = logging.getLogger("f0mesh.rtc.framing")

KIB = 1024
MIB = 1024 * KIB

DEFAULT_MAX_MESSAGE_SIZE = 16 * MIB
DEFAULT_CHUNK_SIZE = 16 * KIB
# Queueing delay is bufferedAmount / drain rate. aiortc counts a message in bufferedAmount only until
# SCTP takes it, and SCTP keeps its congestion window in flight on its own, so this buffer need not
# cover the path's bandwidth-delay product: it only has to outlast one event-loop turn until the
# writer refills it. Measured on loopback (CPU-bound, ~11 MiB/s), 64/16, 128/32 and 256/64 KiB move
# 5 MiB equally fast. 128 KiB is ~11 ms of queue at that rate and ~0.1 s on a 10 Mbit/s path: far
# below the 0.5 s beyond which aioice consent checks starve under a flood and aiortc drops a live link.
DEFAULT_HIGH_WATER = 128 * KIB
DEFAULT_LOW_WATER = 32 * KIB
DEFAULT_STALL_TIMEOUT_S = 10.0

TYPE_BATCH = 0x01
TYPE_START = 0x02
TYPE_MORE = 0x03

_LENGTH = struct.Struct(">H")
_CHUNK = struct.Struct(">BII")
BATCH_OVERHEAD = 1 + _LENGTH.size
CHUNK_HEADER_SIZE = _CHUNK.size

# A well-behaved peer has at most one partial message at a time; this caps dict growth from one that
# opens many tiny streams, which the byte budget alone would allow.
MAX_PARTIAL_MESSAGES = 64
# Remember this many dropped msg_ids, so the rest of a refused message is discarded quietly.
_FORGOTTEN_IDS = 256
# Rough memory of one handler coroutine waiting in the delivery backlog, charged on top of its payload
# so that a flood of empty messages is bounded as well.
BACKLOG_ENTRY_OVERHEAD = 256
_CLOSED_STATES = frozenset({"closing", "closed"})

OnMessage = Callable[[bytes], Awaitable[Any] | None]


class MessageTooLarge(MessageTooLargeError):
    """A message exceeds the link's maximum size; refused before any of it is sent."""

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"message of {size} bytes exceeds this link's maximum message size of {limit} bytes")
        self.size = size
        self.limit = limit


class ChannelClosed(PeerError):
    """The DataChannel (or this framing layer) closed before the message was handed over."""

    code = "channel_closed"


class DataChannelLike(Protocol):
    """The part of aiortc's RTCDataChannel this layer uses, so tests can supply a fake."""

    bufferedAmountLowThreshold: int

    @property
    def bufferedAmount(self) -> int: ...

    @property
    def readyState(self) -> str: ...

    def send(self, data: bytes) -> None: ...

    def on(self, event: str, f: Callable[..., Any]) -> Any: ...


class _Gone:
    """What a closed FramedChannel holds instead of its DataChannel: the real one leads to the
    link's whole peer connection, which a closed link no longer keeps (rtc/link.py)."""

    bufferedAmountLowThreshold = 0
    bufferedAmount = 0
    readyState = "closed"

    def send(self, data: bytes) -> None:
        raise ChannelClosed("framed channel closed")

    def on(self, event: str, f: Callable[..., Any]) -> Any:
        return f


_GONE = _Gone()


@dataclass
class FramingStats:
    """Counters of one FramedChannel; ``bytes_*`` count application payload, not frame headers."""

    messages_out: int = 0
    bytes_out: int = 0
    frames_out: int = 0
    messages_in: int = 0
    bytes_in: int = 0
    frames_in: int = 0
    dropped_garbage: int = 0
    dropped_oversize: int = 0
    dropped_over_limit: int = 0
    dropped_stalled: int = 0
    dropped_frames: int = 0
    dropped_backlog: int = 0
    handler_errors: int = 0


@dataclass(slots=True)
class _Outgoing:
    payload: bytes
    future: asyncio.Future[None]


@dataclass(slots=True)
class _Partial:
    total: int
    buffer: bytearray
    last_activity: float


class FramedChannel:
    """Chunking, batching and backpressure over one reliable, ordered DataChannel.

    ``send()`` returns once the whole message has been handed to the DataChannel; that is not
    delivery (the link may still die with it in a buffer), so delivery acks are the caller's
    business. Messages arrive in send order; ``on_message`` gets each complete one. If it returns
    an awaitable, those are awaited one at a time in arrival order by a single task, and at most
    ``delivery_backlog_bytes`` of messages may wait for it: aiortc cannot stop reading, so beyond
    that new messages are dropped and counted rather than held without bound.

    Partial inbound messages of one peer hold at most ``reassembly_limit_bytes`` (counted by the
    announced length). The default is twice ``max_message_size`` so that a full-size message can
    arrive while a cut-off one still waits for its ``stall_timeout_s`` to run out. With ``memory``,
    each partial message must also fit the node's budget shared by all links (rtc/resources.py).

    ``on_violation(what)`` hears of every frame that breaks this protocol ("garbage", "oversize"),
    so the owner can hold it against the peer; budget and stall drops are not counted against it.

    ``close()`` stops this layer; the DataChannel itself belongs to the link and stays as it is.
    """

    def __init__(
        self,
        channel: DataChannelLike,
        *,
        on_message: OnMessage,
        max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        high_water: int = DEFAULT_HIGH_WATER,
        low_water: int = DEFAULT_LOW_WATER,
        reassembly_limit_bytes: int | None = None,
        stall_timeout_s: float = DEFAULT_STALL_TIMEOUT_S,
        delivery_backlog_bytes: int | None = None,
        on_violation: Callable[[str], None] | None = None,
        memory: MemoryScope | None = None,
    ) -> None:
        if not 64 <= chunk_size <= 0xFFFF:
            raise ConfigError(f"chunk_size must be 64..65535 bytes, got {chunk_size}")
        if not 0 <= low_water < high_water:
            raise ConfigError(f"need 0 <= low_water < high_water, got {low_water} and {high_water}")
        if not 0 <= max_message_size <= 0xFFFFFFFF:
            raise ConfigError(f"max_message_size must be 0..4294967295 bytes, got {max_message_size}")
        if reassembly_limit_bytes is None:
            reassembly_limit_bytes = 2 * max_message_size
        if reassembly_limit_bytes < max_message_size:
            raise ConfigError("reassembly_limit_bytes below max_message_size would refuse legal messages")
        if stall_timeout_s <= 0:
            raise ConfigError(f"stall_timeout_s must be positive, got {stall_timeout_s}")
        self.max_message_size = max_message_size
        self.chunk_size = chunk_size
        self.high_water = high_water
        self.low_water = low_water
        self.reassembly_limit_bytes = reassembly_limit_bytes
        self.stall_timeout_s = stall_timeout_s
        self.delivery_backlog_bytes = (
            reassembly_limit_bytes if delivery_backlog_bytes is None else delivery_backlog_bytes
        )
        self.stats = FramingStats()

        self._channel: DataChannelLike = channel
        self._on_message = on_message
        self._closed = False
        self._channel_gone = False

        self._queue: deque[_Outgoing] = deque()
        self._in_progress: _Outgoing | None = None
        self._writer: asyncio.Task[None] | None = None
        # Set by every event the writer may be waiting for: a queued message, open, low, close.
        self._signal = asyncio.Event()
        self._next_msg_id = 0

        self._partials: dict[int, _Partial] = {}
        self._reserved = 0
        self._forgotten: OrderedDict[int, None] = OrderedDict()
        self._stall_timer: asyncio.TimerHandle | None = None
        self._backlog: deque[tuple[Awaitable[Any], int]] = deque()
        self._backlog_bytes = 0
        self._deliverer: asyncio.Task[None] | None = None
        self._on_violation = on_violation
        self._memory = memory  # the node's budget shared by every link, if any
        self._log = LogThrottle(log)  # one warning per reason and interval: a peer must not flood the log

        channel.on("message", self._on_frame)
        channel.on("open", self._on_signal)
        channel.on("bufferedamountlow", self._on_signal)
        channel.on("close", self._on_channel_close)

    @property
    def reassembly_bytes(self) -> int:
        """Bytes currently reserved by partial inbound messages."""
        return self._reserved

    # ---- sending -------------------------------------------------------------------------------

    async def send(self, payload: bytes) -> None:
        """Queue ``payload`` and return once all of it is handed to the DataChannel (not delivered).

        Waits while the channel's buffer is above ``high_water``. Raises MessageTooLarge at once
        for a payload above ``max_message_size`` and ChannelClosed if the channel closes first.
        Cancelling the call withdraws the message unless its first chunk is already out; a message
        once started is always sent whole, so the receiver never holds a half.
        """
        size = len(payload)
        if size > self.max_message_size:
            raise MessageTooLarge(size, self.max_message_size)
        self._raise_if_closed()
        item = _Outgoing(payload, asyncio.get_running_loop().create_future())
        self._queue.append(item)
        self._signal.set()
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_loop(), name="f0mesh-framing-writer")
        await item.future

    async def close(self) -> None:
        """Stop the writer and the delivery task, fail waiting senders, free reassembly memory."""
        if self._closed:
            return
        self._closed = True
        self._channel = _GONE
        self._fail_pending(ChannelClosed("framed channel closed"))
        self._free_inbound()
        while self._backlog:
            self._discard_awaitable(self._backlog.popleft()[0])
        self._backlog_bytes = 0
        tasks = [
            t for t in (self._writer, self._deliverer) if t is not None and t is not asyncio.current_task()
        ]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)

    def _raise_if_closed(self) -> None:
        if self._closed:
            raise ChannelClosed("framed channel closed")
        if self._channel_gone or self._channel.readyState in _CLOSED_STATES:
            raise ChannelClosed("data channel closed")

    async def _wait_writable(self, *, need_message: bool) -> None:
        """Wait until the channel is open with bufferedAmount <= high_water (and, if asked, work)."""
        while True:
            self._signal.clear()
            self._raise_if_closed()
            if self._channel.readyState == "open":
                if self._channel.bufferedAmount > self.high_water:
                    # bufferedamountlow fires only on crossing the threshold downwards, which is
                    # still ahead of us: we are above high_water > low_water right now.
                    self._channel.bufferedAmountLowThreshold = self.low_water
                elif self._queue or not need_message:
                    return
            await self._signal.wait()

    async def _write_loop(self) -> None:
        try:
            while True:
                await self._wait_writable(need_message=True)
                head = self._queue[0]
                if head.future.done():
                    self._queue.popleft()
                elif len(head.payload) <= self.chunk_size - BATCH_OVERHEAD:
                    self._send_batch()
                else:
                    self._queue.popleft()
                    self._in_progress = head
                    await self._send_chunked(head)
                    self._in_progress = None
        except ChannelClosed as exc:
            self._fail_pending(exc)
        finally:
            # Whatever ended the writer (close(), or a bug), no sender may be left waiting forever.
            self._fail_pending(ChannelClosed("framing writer stopped"))

    def _send_batch(self) -> None:
        """Pack every waiting message that fits into one BATCH frame and send it."""
        parts = [bytes((TYPE_BATCH,))]
        room = self.chunk_size - 1
        items: list[_Outgoing] = []
        while self._queue:
            item = self._queue[0]
            if item.future.done():
                self._queue.popleft()
                continue
            need = _LENGTH.size + len(item.payload)
            if need > room:
                break
            self._queue.popleft()
            parts.append(_LENGTH.pack(len(item.payload)))
            parts.append(item.payload)
            room -= need
            items.append(item)
        try:
            self._send_frame(b"".join(parts))
        except Exception as exc:
            for item in items:
                _settle(item.future, exc)
            if isinstance(exc, ChannelClosed):
                raise
            return
        for item in items:
            self._count_sent(item)

    async def _send_chunked(self, item: _Outgoing) -> None:
        data = memoryview(item.payload)
        total = len(data)
        msg_id = self._next_msg_id
        self._next_msg_id = (msg_id + 1) & 0xFFFFFFFF
        step = self.chunk_size - CHUNK_HEADER_SIZE
        offset = 0
        while offset < total:
            if offset:
                await self._wait_writable(need_message=False)
            end = min(offset + step, total)
            header = _CHUNK.pack(TYPE_MORE if offset else TYPE_START, msg_id, offset if offset else total)
            try:
                self._send_frame(header + data[offset:end])
            except Exception as exc:
                _settle(item.future, exc)
                if isinstance(exc, ChannelClosed):
                    raise
                return
            offset = end
        self._count_sent(item)

    def _send_frame(self, frame: bytes) -> None:
        try:
            self._channel.send(frame)
        except Exception as exc:
            if self._channel.readyState != "open":
                raise ChannelClosed("data channel closed") from exc
            raise
        self.stats.frames_out += 1

    def _count_sent(self, item: _Outgoing) -> None:
        self.stats.messages_out += 1
        self.stats.bytes_out += len(item.payload)
        _settle(item.future, None)

    def _fail_pending(self, exc: ChannelClosed) -> None:
        if self._in_progress is not None:
            _settle(self._in_progress.future, exc)
            self._in_progress = None
        while self._queue:
            _settle(self._queue.popleft().future, exc)

    # ---- channel events ------------------------------------------------------------------------

    def _on_signal(self) -> None:
        self._signal.set()

    def _on_channel_close(self) -> None:
        self._channel_gone = True
        self._signal.set()
        self._free_inbound()

    def _free_inbound(self) -> None:
        self._partials.clear()
        if self._memory is not None:
            self._memory.release(self._reserved)
        self._reserved = 0
        if self._stall_timer is not None:
            self._stall_timer.cancel()
            self._stall_timer = None

    # ---- receiving -----------------------------------------------------------------------------

    def _on_frame(self, frame: bytes | str) -> None:
        """aiortc's message callback: whatever the frame holds, nothing may raise into aiortc."""
        if self._closed:
            return
        self.stats.frames_in += 1
        try:
            self._handle_frame(frame)
        except Exception:
            self.stats.dropped_garbage += 1
            self._warn("bug", "framing: frame handling failed, frame dropped", exc_info=True)

    def _handle_frame(self, frame: bytes | str) -> None:
        if not isinstance(frame, bytes) or not frame:
            self._garbage("not a non-empty binary frame")
        elif frame[0] == TYPE_BATCH:
            self._on_batch(frame)
        elif frame[0] in (TYPE_START, TYPE_MORE):
            if len(frame) < CHUNK_HEADER_SIZE:
                self._garbage(f"chunk frame of {len(frame)} bytes is shorter than its header")
                return
            kind, msg_id, value = _CHUNK.unpack_from(frame)
            body = memoryview(frame)[CHUNK_HEADER_SIZE:]
            if kind == TYPE_START:
                self._on_start(msg_id, value, body)
            else:
                self._on_more(msg_id, value, body)
        else:
            self._garbage(f"unknown frame type 0x{frame[0]:02x}")

    def _on_batch(self, frame: bytes) -> None:
        """Validate the whole frame before delivering any of it: a truncated batch is dropped whole."""
        spans: list[tuple[int, int]] = []
        pos, end = 1, len(frame)
        while pos < end:
            if pos + _LENGTH.size > end:
                self._garbage("batch frame truncated inside a length field")
                return
            (length,) = _LENGTH.unpack_from(frame, pos)
            pos += _LENGTH.size
            if pos + length > end:
                self._garbage(f"batch entry of {length} bytes overruns its frame")
                return
            spans.append((pos, pos + length))
            pos += length
        if not spans:
            self._garbage("empty batch frame")
            return
        for start, stop in spans:
            if self._closed:
                return
            if stop - start > self.max_message_size:
                self._oversize(stop - start)
            else:
                self._deliver(frame[start:stop])

    def _on_start(self, msg_id: int, total: int, body: memoryview) -> None:
        self._forgotten.pop(msg_id, None)
        if msg_id in self._partials:
            self._drop_partial(msg_id)
            self._garbage(f"message {msg_id} restarted before it was complete")
            return
        if total > self.max_message_size:
            self._oversize(total)
            self._forget(msg_id)
            return
        if len(body) > total:
            self._garbage(f"first chunk of {len(body)} bytes exceeds the announced {total}")
            self._forget(msg_id)
            return
        if len(body) == total:
            self._deliver(bytes(body))
            return
        if (
            self._reserved + total > self.reassembly_limit_bytes
            or len(self._partials) >= MAX_PARTIAL_MESSAGES
            or (self._memory is not None and not self._memory.reserve(total))
        ):
            self.stats.dropped_over_limit += 1
            self._warn(
                "over_limit",
                "framing: dropped a %d-byte message: reassembly holds %d of %d bytes in %d messages",
                total,
                self._reserved,
                self.reassembly_limit_bytes,
                len(self._partials),
            )
            self._forget(msg_id)
            return
        loop = asyncio.get_running_loop()
        self._partials[msg_id] = _Partial(total, bytearray(body), loop.time())
        self._reserved += total
        if self._stall_timer is None:
            self._stall_timer = loop.call_later(self.stall_timeout_s, self._check_stalls)

    def _on_more(self, msg_id: int, offset: int, body: memoryview) -> None:
        partial = self._partials.get(msg_id)
        if partial is None:
            if msg_id in self._forgotten:
                self.stats.dropped_frames += 1
            else:
                self._garbage(f"chunk of unknown message {msg_id}")
            return
        received = len(partial.buffer)
        if offset != received or not body or received + len(body) > partial.total:
            self._drop_partial(msg_id)
            self._garbage(
                f"chunk of {len(body)} bytes at offset {offset} does not continue message {msg_id} "
                f"({received} of {partial.total} bytes received)"
            )
            return
        partial.buffer += body
        partial.last_activity = asyncio.get_running_loop().time()
        if len(partial.buffer) == partial.total:
            self._drop_partial(msg_id, forget=False)
            self._deliver(bytes(partial.buffer))

    def _check_stalls(self) -> None:
        """The one stall timer: free messages without progress, re-arm for the oldest one left."""
        self._stall_timer = None
        loop = asyncio.get_running_loop()
        now = loop.time()
        for msg_id, partial in list(self._partials.items()):
            if now - partial.last_activity >= self.stall_timeout_s:
                self._drop_partial(msg_id)
                self.stats.dropped_stalled += 1
                self._warn(
                    "stalled",
                    "framing: freed message %d after %.1f s without a chunk (%d of %d bytes)",
                    msg_id,
                    self.stall_timeout_s,
                    len(partial.buffer),
                    partial.total,
                )
        if self._partials:
            oldest = min(p.last_activity for p in self._partials.values())
            delay = max(oldest + self.stall_timeout_s - now, 0.0)
            self._stall_timer = loop.call_later(delay, self._check_stalls)

    def _drop_partial(self, msg_id: int, *, forget: bool = True) -> None:
        partial = self._partials.pop(msg_id)
        self._reserved -= partial.total
        if self._memory is not None:
            self._memory.release(partial.total)
        if forget:
            self._forget(msg_id)
        if not self._partials and self._stall_timer is not None:
            self._stall_timer.cancel()
            self._stall_timer = None

    def _forget(self, msg_id: int) -> None:
        self._forgotten[msg_id] = None
        if len(self._forgotten) > _FORGOTTEN_IDS:
            self._forgotten.popitem(last=False)

    def _deliver(self, payload: bytes) -> None:
        self.stats.messages_in += 1
        self.stats.bytes_in += len(payload)
        try:
            result = self._on_message(payload)
        except Exception:
            self.stats.handler_errors += 1
            self._warn("handler", "framing: on_message raised", exc_info=True)
            return
        if not inspect.isawaitable(result):
            return
        cost = len(payload) + BACKLOG_ENTRY_OVERHEAD
        if self._backlog_bytes + cost > self.delivery_backlog_bytes:
            self._discard_awaitable(result)
            self.stats.dropped_backlog += 1
            self._warn(
                "backlog",
                "framing: dropped a %d-byte message: %d bytes already wait for the message handler",
                len(payload),
                self._backlog_bytes,
            )
            return
        self._backlog.append((result, cost))
        self._backlog_bytes += cost
        if self._deliverer is None:
            self._deliverer = asyncio.get_running_loop().create_task(
                self._deliver_loop(), name="f0mesh-framing-deliver"
            )

    async def _deliver_loop(self) -> None:
        """Await handler results one at a time, in arrival order; ends when none are left."""
        try:
            while self._backlog:
                awaitable, size = self._backlog.popleft()
                try:
                    await awaitable
                except Exception:
                    self.stats.handler_errors += 1
                    self._warn("handler", "framing: on_message raised", exc_info=True)
                finally:
                    self._backlog_bytes -= size
        finally:
            self._deliverer = None

    @staticmethod
    def _discard_awaitable(awaitable: Awaitable[Any]) -> None:
        if inspect.iscoroutine(awaitable):
            awaitable.close()

    def _garbage(self, detail: str) -> None:
        self.stats.dropped_garbage += 1
        self._warn("garbage", "framing: dropped a malformed frame: %s", detail)
        self._violation("garbage")

    def _oversize(self, size: int) -> None:
        self.stats.dropped_oversize += 1
        self._warn(
            "oversize",
            "framing: dropped a %d-byte message announced by the peer: limit is %d bytes",
            size,
            self.max_message_size,
        )
        self._violation("oversize")

    def _violation(self, what: str) -> None:
        """The peer broke the framing protocol: tell the owner (the trust layer counts it)."""
        if self._on_violation is None:
            return
        try:
            self._on_violation(what)
        except Exception:
            self._warn("handler", "framing: on_violation raised", exc_info=True)

    def _warn(self, reason: str, msg: str, *args: object, exc_info: bool = False) -> None:
        self._log.warning(reason, msg, *args, exc_info=exc_info)


def _settle(future: asyncio.Future[None], exc: BaseException | None) -> None:
    if future.done():
        return
    if exc is None:
        future.set_result(None)
    else:
        future.set_exception(exc)
