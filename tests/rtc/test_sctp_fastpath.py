"""The guarded SCTP sender skips the walk of chunks in flight only when none can be marked."""

from __future__ import annotations

from collections import deque
from typing import Any

from aiortc import rtcsctptransport as sctp
from sctp_pair import channel_pair, lose_every

from f0mesh.rtc import sctp_fastpath


class CountingQueue(deque):
    """The sent queue, counting how often the sender walks it."""

    walks = 0

    def __iter__(self) -> Any:
        self.walks += 1
        return super().__iter__()


class Sender:
    """The state ``_transmit`` reads of an RTCSctpTransport, with its sends recorded."""

    def __init__(self, in_flight: int) -> None:
        self._forward_tsn_chunk = None
        self._fast_recovery_exit = None
        self._fast_recovery_transmit = False
        self._t3_handle = object()
        self._cwnd = 10**9
        self._flight_size = 0
        self._sent_queue = CountingQueue()
        self._outbound_queue: deque[sctp.DataChunk] = deque()
        self.sent: list[int] = []
        for tsn in range(in_flight):
            self._outbound_queue.append(_chunk(tsn))

    async def _send_chunk(self, chunk: sctp.DataChunk) -> None:
        self.sent.append(chunk.tsn)

    def _flight_size_increase(self, chunk: sctp.DataChunk) -> None:
        self._flight_size += chunk._book_size

    def _t3_start(self) -> None:
        pass

    def _t3_restart(self) -> None:
        pass


def _chunk(tsn: int) -> sctp.DataChunk:
    chunk = sctp.DataChunk()
    chunk.tsn = tsn
    chunk.user_data = b"x" * 100
    chunk._book_size = 100
    chunk._sent_count = 0
    chunk._misses = 0
    chunk._retransmit = False
    return chunk


def test_installs_on_the_pinned_aiortc() -> None:
    assert sctp_fastpath.install()
    assert sctp.RTCSctpTransport._transmit is sctp_fastpath._transmit


async def test_the_walk_is_skipped_until_a_chunk_is_marked_and_a_marked_chunk_is_retransmitted() -> None:
    sctp_fastpath.install()
    sender = Sender(in_flight=40)
    await sctp_fastpath._transmit(sender)  # first call: a full walk, then all 40 go out (one burst)
    assert sender.sent == list(range(40)) and sender._sent_queue.walks == 1
    for _ in range(5):  # SACKs with nothing lost: aiortc would walk 40 chunks each time
        await sctp_fastpath._transmit(sender)
    assert sender._sent_queue.walks == 1 and len(sender.sent) == 40

    sender._sent_queue[30]._retransmit = True  # what a SACK's gap report or T3 expiry does
    await sctp_fastpath._transmit(sender)
    assert sender.sent[40:] == [30] and sender._sent_queue.walks == 2
    assert not sender._sent_queue[30]._retransmit and sender._sent_queue[30]._sent_count == 2
    await sctp_fastpath._transmit(sender)
    assert sender._sent_queue.walks == 2  # clean again


async def test_a_mark_on_another_transport_costs_a_walk_but_no_send() -> None:
    sctp_fastpath.install()
    a, b = Sender(in_flight=3), Sender(in_flight=3)
    await sctp_fastpath._transmit(a)
    await sctp_fastpath._transmit(b)
    b._sent_queue[0]._retransmit = True
    await sctp_fastpath._transmit(a)
    assert a._sent_queue.walks == 2 and a.sent == [0, 1, 2]
    await sctp_fastpath._transmit(b)
    assert b.sent == [0, 1, 2, 0]


async def test_a_window_full_of_retransmissions_keeps_walking_until_all_are_out() -> None:
    sctp_fastpath.install()
    sender = Sender(in_flight=4)
    await sctp_fastpath._transmit(sender)
    for chunk in sender._sent_queue:
        chunk._retransmit = True
    sender._flight_size = sender._cwnd = 200  # room for none: the walk returns early
    await sctp_fastpath._transmit(sender)
    assert sender.sent == [0, 1, 2, 3]
    sender._flight_size = 0
    await sctp_fastpath._transmit(sender)
    assert sender.sent == [0, 1, 2, 3, 0, 1]  # two fit in the burst; the rest wait, still marked
    sender._flight_size = 0
    sender._cwnd = 10**9
    await sctp_fastpath._transmit(sender)
    assert sender.sent[6:] == [2, 3]


async def test_lost_datagrams_are_retransmitted_by_real_aiortc_peers_with_the_fast_path(monkeypatch) -> None:
    """Two aiortc peer connections in this process; the sender loses every 40th DATA chunk's first
    transmission, and every byte must still arrive, in order."""
    assert sctp_fastpath.install()
    sent = lose_every(monkeypatch, 40)
    messages = [bytes([i % 256]) * 16_000 for i in range(128)]  # ~2 MB, ~1,700 DATA chunks
    async with channel_pair() as pair:
        assert await pair.transfer(messages) == messages
    assert sent["dropped"] > 10 and sent["again"] >= sent["dropped"], sent


def test_another_aiortc_is_left_as_it_is(monkeypatch) -> None:
    async def changed(self: Any) -> None:
        """An aiortc whose _transmit differs from the copied one."""

    monkeypatch.setattr(sctp_fastpath, "_installed", None)
    monkeypatch.setattr(sctp.RTCSctpTransport, "_transmit", changed)
    assert not sctp_fastpath.install()
    assert sctp.RTCSctpTransport._transmit is changed
    assert not sctp_fastpath.install()  # decided once
