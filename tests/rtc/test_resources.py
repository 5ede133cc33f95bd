"""The limits strangers meet below the node: a reassembly budget shared by links, the dial gate."""

from __future__ import annotations

from test_framing import FakeChannel, more_frame, start_frame

from f0mesh.rtc.dial_gate import MAX_ADDRESSES, DialGate, address_of
from f0mesh.rtc.framing import FramedChannel
from f0mesh.rtc.resources import MemoryBudget


def _channel(budget: MemoryBudget, peer: str) -> tuple[FramedChannel, FakeChannel, list[bytes]]:
    chan, received = FakeChannel(), []
    framed = FramedChannel(
        chan,
        on_message=received.append,
        max_message_size=1000,
        chunk_size=256,
        memory=budget.scope(peer),
    )
    return framed, chan, received


async def test_partial_messages_of_all_links_share_one_budget() -> None:
    """Each link alone may hold 2000 bytes; together they hold at most the node's 2500."""
    budget = MemoryBudget(total_bytes=2500, per_peer_bytes=2000)
    a, chan_a, got_a = _channel(budget, "a")
    b, chan_b, got_b = _channel(budget, "b")
    chan_a.emit("message", start_frame(1, 1000, b"x" * 100))
    chan_a.emit("message", start_frame(2, 1000, b"x" * 100))
    chan_b.emit("message", start_frame(1, 1000, b"y" * 100))  # 3000 > 2500: refused
    assert b.stats.dropped_over_limit == 1 and budget.used == 2000 and budget.refused == 1
    chan_b.emit("message", start_frame(2, 500, b"y" * 100))  # fits the 500 left
    assert budget.used == 2500 and budget.held("b") == 500
    for offset in range(100, 1000, 100):
        chan_a.emit("message", more_frame(1, offset, b"x" * 100))
    assert got_a == [b"x" * 1000] and budget.used == 1500  # a delivered message frees its share
    await a.close()  # a closed link frees everything it held
    assert budget.used == 500 and budget.held("a") == 0
    await b.close()
    assert budget.used == 0 and got_b == []


def test_one_peer_cannot_take_the_whole_budget() -> None:
    budget = MemoryBudget(total_bytes=10_000, per_peer_bytes=3000)
    assert budget.reserve("p", 3000)
    assert not budget.reserve("p", 1)
    assert budget.reserve("q", 3000)
    budget.release("p", 5000)  # releasing more than held frees what is held, never goes negative
    assert budget.held("p") == 0 and budget.used == 3000


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_dial_gate_rate_and_burst() -> None:
    clock = Clock()
    gate = DialGate(rate=2.0, burst=3, clock=clock)
    assert [gate.wait(f"http://10.0.0.{i}:8700") for i in range(3)] == [0.0, 0.0, 0.0]
    assert gate.wait("http://10.0.0.9:8700") == 0.5  # a token every half second
    clock.now += 0.5
    assert gate.wait("http://10.0.0.9:8700") == 0.0
    assert (gate.admitted, gate.refused) == (4, 1)


def test_dial_gate_backs_off_per_address() -> None:
    clock = Clock()
    gate = DialGate(rate=100.0, burst=100, backoff_base_s=2.0, backoff_max_s=10.0, clock=clock)
    url = "http://127.0.0.2:9000/fake-1"
    gate.failed(url)
    assert gate.wait("http://127.0.0.2:9000/fake-2") == 2.0  # another path on the same server waits too
    assert gate.wait("http://127.0.0.3:9000/") == 0.0  # other addresses do not
    gate.failed(url)
    gate.failed(url)
    assert gate.wait(url) == 8.0
    for _ in range(10):
        gate.failed(url)
    assert gate.wait(url) == 10.0  # capped
    assert gate.wait(url, backoff=False) == 0.0  # a redial with a backoff of its own needs a token only
    gate.succeeded(url)
    assert gate.wait(url) == 0.0


def test_dial_gate_remembers_a_bounded_number_of_addresses() -> None:
    gate = DialGate(rate=1.0, burst=1)
    for i in range(MAX_ADDRESSES + 50):
        gate.failed(f"http://h{i}.example:80")
    assert len(gate._backoff) == MAX_ADDRESSES
    assert address_of("HTTPS://Example.org/x") == "example.org:443"
