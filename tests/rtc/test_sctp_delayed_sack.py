"""Delayed SACKs: every second packet, at once on anything out of line, a lone packet within the bound."""

from __future__ import annotations

import asyncio
import struct
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiortc import rtcsctptransport as sctp
from sctp_pair import channel_pair, lose_every

from f0mesh.rtc import sctp_delayed_sack, sctp_fastpath

SACK_WAIT_S = 5.0  # generous: the timer is checked by its deadline, this only bounds the test


class Dtls:
    """What RTCSctpTransport's constructor reads of its DTLS transport; nothing is sent through it."""

    state = "connected"

    def _register_data_receiver(self, receiver: Any) -> None:
        pass


class Endpoint:
    """A real aiortc SCTP transport in the ESTABLISHED state, fed crafted packets, what it sends recorded."""

    def __init__(self) -> None:
        self.transport = sctp.RTCSctpTransport(Dtls())  # type: ignore[arg-type]
        self.transport._association_state = sctp.RTCSctpTransport.State.ESTABLISHED
        self.transport._last_received_tsn = 1000
        self.transport._remote_port = 5000
        self.sacks: list[sctp.SackChunk] = []
        self.others: list[sctp.Chunk] = []
        self.sacked = asyncio.Event()
        self.transport._send_chunk = self._record  # type: ignore[method-assign]

    async def _record(self, chunk: sctp.Chunk) -> None:
        if isinstance(chunk, sctp.SackChunk):
            self.sacks.append(chunk)
            self.sacked.set()
        else:
            self.others.append(chunk)

    async def packet(self, *chunks: sctp.Chunk) -> None:
        """One SCTP packet holding these chunks, as the DTLS transport hands it over."""
        header = struct.pack("!HHL", 5000, 5000, self.transport._local_verification_tag)
        body = b"".join(bytes(chunk) for chunk in chunks)
        checksum = struct.pack("<L", sctp.crc32c(header + b"\x00" * 4 + body))
        await self.transport._handle_data(header + checksum + body)

    async def data(self, tsn: int, flags: int = 0) -> None:
        await self.packet(_data_chunk(tsn, flags))


def _data_chunk(tsn: int, flags: int = 0) -> sctp.DataChunk:
    """A whole one-chunk message on stream 0 (no channel there: aiortc drops it after acknowledging)."""
    chunk = sctp.DataChunk(flags=flags | sctp.SCTP_DATA_FIRST_FRAG | sctp.SCTP_DATA_LAST_FRAG)
    chunk.tsn, chunk.stream_id, chunk.stream_seq = tsn, 0, (tsn - 1001) % 65536
    chunk.protocol, chunk.user_data = sctp.WEBRTC_BINARY, b"x"
    return chunk


@pytest.fixture
async def receiver() -> AsyncIterator[Endpoint]:
    assert sctp_delayed_sack.install()
    endpoint = Endpoint()
    yield endpoint
    timer = getattr(endpoint.transport, "_f0mesh_sack_timer", None)
    if timer is not None:  # a SACK still due when the test ended
        timer.cancel()


def test_installs_on_the_pinned_aiortc() -> None:
    assert sctp_delayed_sack.install()
    assert sctp.RTCSctpTransport._handle_data is sctp_delayed_sack._handle_data
    assert sctp.RTCSctpTransport._receive_sack_chunk is sctp_delayed_sack._receive_sack_chunk


async def test_every_second_packet_is_acknowledged_at_once(receiver: Endpoint) -> None:
    for tsn in range(1001, 1011):
        await receiver.data(tsn)
    assert [sack.cumulative_tsn for sack in receiver.sacks] == [1002, 1004, 1006, 1008, 1010]
    assert all(not sack.gaps and not sack.duplicates for sack in receiver.sacks)


async def test_a_lone_packet_is_acknowledged_when_the_timer_fires(receiver: Endpoint) -> None:
    loop = asyncio.get_running_loop()
    before = loop.time()
    await receiver.data(1001)
    assert receiver.sacks == []  # not at once...
    timer = receiver.transport._f0mesh_sack_timer
    assert timer is not None and timer.when() <= before + sctp_delayed_sack.SACK_DELAY_S + 1e-3
    await asyncio.wait_for(receiver.sacked.wait(), SACK_WAIT_S)  # ...but once that deadline passes
    assert [sack.cumulative_tsn for sack in receiver.sacks] == [1001]
    assert not receiver.transport._sack_needed


async def test_a_packet_without_data_neither_acks_nor_delays_a_pending_one(receiver: Endpoint) -> None:
    await receiver.data(1001)
    due = receiver.transport._f0mesh_sack_due
    heartbeat = sctp.HeartbeatChunk()
    heartbeat.params = [(1, b"ping")]
    await receiver.packet(heartbeat)
    assert len(receiver.others) == 1 and receiver.sacks == []  # its HEARTBEAT ACK only
    assert receiver.transport._f0mesh_sack_due == due
    await asyncio.wait_for(receiver.sacked.wait(), SACK_WAIT_S)
    assert [sack.cumulative_tsn for sack in receiver.sacks] == [1001]


async def test_a_packet_after_an_early_timer_waits_for_its_own_deadline(receiver: Endpoint) -> None:
    await receiver.data(1001)
    await receiver.data(1002)  # the pair is acknowledged; the timer armed for 1001 stays
    await receiver.data(1003)
    armed = receiver.transport._f0mesh_sack_timer
    receiver.transport._f0mesh_sack_due = asyncio.get_running_loop().time() + 60  # as if 1003 came later
    armed._run()  # the older timer fires: 1003 is not due yet, so it waits again instead of a SACK
    assert [sack.cumulative_tsn for sack in receiver.sacks] == [1002]
    assert receiver.transport._f0mesh_sack_timer is not None
    assert receiver.transport._f0mesh_sack_timer.when() == receiver.transport._f0mesh_sack_due
    receiver.transport._f0mesh_sack_timer.cancel()


async def test_a_gap_its_filling_and_a_duplicate_are_acknowledged_at_once(receiver: Endpoint) -> None:
    await receiver.data(1001)
    assert receiver.sacks == []
    await receiver.data(1003)  # 1002 missing: a gap report at once
    assert receiver.sacks[-1].cumulative_tsn == 1001 and receiver.sacks[-1].gaps == [(2, 2)]
    await receiver.data(1004)  # still a gap: every packet is acknowledged
    assert len(receiver.sacks) == 2 and receiver.sacks[-1].gaps == [(2, 3)]
    await receiver.data(1002)  # fills it
    assert len(receiver.sacks) == 3
    assert receiver.sacks[-1].cumulative_tsn == 1004 and not receiver.sacks[-1].gaps
    await receiver.data(1003)  # a duplicate
    assert len(receiver.sacks) == 4 and receiver.sacks[-1].duplicates == [1003]
    await receiver.data(1005)  # in line again: waits for a second packet or the timer
    assert len(receiver.sacks) == 4


async def test_the_sack_immediately_bit_and_a_forward_tsn_are_acked_at_once(receiver: Endpoint) -> None:
    await receiver.data(1001, flags=sctp_delayed_sack.SACK_IMMEDIATELY)
    assert [sack.cumulative_tsn for sack in receiver.sacks] == [1001]
    forward = sctp.ForwardTsnChunk()
    forward.cumulative_tsn, forward.streams = 1005, []
    await receiver.packet(forward)
    assert [sack.cumulative_tsn for sack in receiver.sacks] == [1001, 1005]


async def test_two_data_chunks_in_one_packet_are_one_packet(receiver: Endpoint) -> None:
    await receiver.packet(_data_chunk(1001), _data_chunk(1002))
    assert receiver.sacks == []
    await receiver.packet(_data_chunk(1003), _data_chunk(1005))  # a gap inside the packet
    assert [(sack.cumulative_tsn, sack.gaps) for sack in receiver.sacks] == [(1003, [(2, 2)])]


MTU = sctp.USERDATA_MAX_LENGTH


def _full_chunk(tsn: int, sent_count: int) -> sctp.DataChunk:
    """A full-size chunk with the bookkeeping aiortc's sender keeps on it."""
    chunk = _data_chunk(tsn)
    chunk.user_data = b"x" * MTU
    chunk._book_size, chunk._sent_count, chunk._sent_time, chunk._misses = MTU, sent_count, 0.0, 0
    chunk._acked = chunk._retransmit = chunk._abandoned = False
    chunk._in_flight, chunk._max_retransmits, chunk._expiry = sent_count > 0, None, None
    return chunk


def _sender(in_flight: int, cwnd: int, ssthresh: int) -> Endpoint:
    """The same transport as a sender: ``in_flight`` full-size chunks from TSN 1 sent, none acked."""
    side = Endpoint()
    t = side.transport
    t._last_sacked_tsn = 0
    t._sent_queue.extend(_full_chunk(tsn, sent_count=1) for tsn in range(1, in_flight + 1))
    t._flight_size = in_flight * MTU
    t._cwnd, t._ssthresh = cwnd, ssthresh
    return side


def _sack(cumulative_tsn: int, gaps: list[tuple[int, int]] | None = None) -> sctp.SackChunk:
    sack = sctp.SackChunk()
    sack.cumulative_tsn, sack.advertised_rwnd, sack.gaps, sack.duplicates = (
        cumulative_tsn,
        1 << 20,
        gaps or [],
        [],
    )
    return sack


async def test_slow_start_grows_by_two_mtus_for_a_sack_of_two_packets() -> None:
    """RFC 3465's L = 2: with a SACK per two packets the window still doubles per round trip."""
    assert sctp_delayed_sack.install()
    pair, lone = (_sender(in_flight=6, cwnd=6 * MTU, ssthresh=1 << 20) for _ in range(2))
    pair.transport._outbound_queue.extend(_full_chunk(tsn, sent_count=0) for tsn in range(7, 17))
    await pair.transport._receive_sack_chunk(_sack(2))
    assert pair.transport._cwnd == 8 * MTU  # stock aiortc: 7
    sent = [chunk.tsn for chunk in pair.others if isinstance(chunk, sctp.DataChunk)]
    assert sent == [7, 8, 9, 10]  # the window is full again at once: two acked, two more allowed
    await lone.transport._receive_sack_chunk(_sack(1))  # one packet: one MTU, as before
    assert lone.transport._cwnd == 7 * MTU
    for side in (pair, lone):
        side.transport._t3_cancel()


async def test_congestion_avoidance_and_a_window_not_full_are_left_to_aiortc() -> None:
    assert sctp_delayed_sack.install()
    avoiding = _sender(in_flight=6, cwnd=6 * MTU, ssthresh=4 * MTU)  # above ssthresh: bytes counted
    await avoiding.transport._receive_sack_chunk(_sack(2))
    assert avoiding.transport._cwnd == 6 * MTU and avoiding.transport._partial_bytes_acked == 2 * MTU
    idle = _sender(in_flight=6, cwnd=10 * MTU, ssthresh=1 << 20)  # the window is not full: no growth
    await idle.transport._receive_sack_chunk(_sack(2))
    assert idle.transport._cwnd == 10 * MTU
    for side in (avoiding, idle):
        side.transport._t3_cancel()


async def test_a_loss_in_slow_start_gets_no_extra_mtu() -> None:
    """A SACK that acks two packets and strikes a third time: aiortc grows the window by one MTU, then
    halves it to ssthresh, here 4 MTUs, which is also the window plus one MTU; nothing is added."""
    assert sctp_delayed_sack.install()
    side = _sender(in_flight=8, cwnd=3 * MTU, ssthresh=1 << 20)
    await side.transport._receive_sack_chunk(_sack(0, gaps=[(4, 4)]))  # 1-3 missing, struck once
    await side.transport._receive_sack_chunk(_sack(0, gaps=[(4, 5)]))  # twice
    await side.transport._receive_sack_chunk(_sack(2, gaps=[(2, 4)]))  # 1, 2 acked; 3 struck thrice
    assert side.transport._fast_recovery_exit is not None
    assert side.transport._cwnd == side.transport._ssthresh == 4 * MTU
    side.transport._t3_cancel()


async def test_a_clean_transfer_sends_one_sack_per_two_data_packets(monkeypatch) -> None:
    """Between two real aiortc peers; stock aiortc sends one SACK per DATA packet."""
    assert sctp_delayed_sack.install()
    sent = {"data": 0, "sack": 0}
    original = sctp.RTCSctpTransport._send_chunk

    async def counting(self: Any, chunk: Any) -> None:
        if isinstance(chunk, sctp.DataChunk):
            sent["data"] += 1
        elif isinstance(chunk, sctp.SackChunk):
            sent["sack"] += 1
        await original(self, chunk)

    messages = [bytes([i % 256]) * 16_000 for i in range(64)]  # ~1 MB, ~870 DATA chunks
    async with channel_pair() as pair:
        monkeypatch.setattr(sctp.RTCSctpTransport, "_send_chunk", counting)
        assert await pair.transfer(messages) == messages
    assert sent["data"] > 800
    assert 0.45 * sent["data"] <= sent["sack"] <= 0.6 * sent["data"], sent


async def test_lost_datagrams_are_reported_at_once_and_retransmitted(monkeypatch) -> None:
    """The sender loses every 40th DATA chunk's first transmission; every byte arrives, in order, and the
    receiver reports each gap at once (one SACK per packet while a gap is open)."""
    assert sctp_fastpath.install() and sctp_delayed_sack.install()
    sent = lose_every(monkeypatch, 40)
    messages = [bytes([i % 256]) * 16_000 for i in range(128)]  # ~2 MB, ~1,700 DATA chunks
    async with channel_pair() as pair:
        assert await pair.transfer(messages) == messages
    assert sent["dropped"] > 10 and sent["again"] >= sent["dropped"], sent
    # a loss is struck after three gap reports: one per packet after the hole, not one per two
    assert sent["gap_sacks"] >= 3 * sent["dropped"], sent


def test_another_aiortc_is_left_as_it_is(monkeypatch) -> None:
    async def changed(self: Any, data: bytes) -> None:
        """An aiortc whose _handle_data differs from the copied one."""

    monkeypatch.setattr(sctp_delayed_sack, "_installed", None)
    monkeypatch.setattr(sctp.RTCSctpTransport, "_handle_data", changed)
    assert not sctp_delayed_sack.install()
    assert sctp.RTCSctpTransport._handle_data is changed
    assert not sctp_delayed_sack.install()  # decided once


def test_a_change_in_a_method_it_relies_on_leaves_aiortc_as_it_is(monkeypatch) -> None:
    async def changed(self: Any) -> None:
        """An aiortc whose _send_sack differs from the one the copy relies on."""

    monkeypatch.setattr(sctp_delayed_sack, "_installed", None)
    monkeypatch.setattr(sctp.RTCSctpTransport, "_send_sack", changed)
    assert not sctp_delayed_sack.install()
