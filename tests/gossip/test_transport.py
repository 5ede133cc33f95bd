import asyncio
import random

import pytest

from f0mesh.gossip.transport import LinkClosedError, MemoryNetwork


class Recorder:
    def __init__(self) -> None:
        self.messages: list[tuple[str, dict]] = []
        self.events: list[tuple[str, str]] = []

    async def on_message(self, from_peer, message):
        self.messages.append((from_peer, message))

    async def on_neighbour_up(self, peer_id):
        self.events.append(("up", peer_id))

    async def on_neighbour_down(self, peer_id):
        self.events.append(("down", peer_id))


async def test_messages_arrive_in_order_as_copies():
    net = MemoryNetwork()
    a, b = Recorder(), Recorder()
    net.attach("a", a)
    net.attach("b", b)
    await net.connect("a", "b")
    assert a.events == [("up", "b")] and b.events == [("up", "a")]
    sent = {"type": "msgs", "msgs": [b"x"]}
    for n in range(20):
        await net.transport("a").send("b", {**sent, "n": n})
    await net.settle(5)
    assert [m["n"] for _, m in b.messages] == list(range(20))
    assert b.messages[0][0] == "a" and b.messages[0][1] is not sent
    assert net.transport("a").neighbours() == ["b"]
    await net.close()


async def test_send_without_a_link_raises_and_disconnect_notifies_both_ends():
    net = MemoryNetwork()
    a, b = Recorder(), Recorder()
    net.attach("a", a)
    net.attach("b", b)
    with pytest.raises(LinkClosedError):
        await net.transport("a").send("b", {"type": "ack", "ids": []})
    await net.connect("a", "b")
    await net.disconnect("a", "b")
    assert a.events[-1] == ("down", "b") and b.events[-1] == ("down", "a")
    with pytest.raises(LinkClosedError):
        await net.transport("b").send("a", {"type": "ack", "ids": []})
    await net.close()


async def test_unencodable_messages_are_refused():
    net = MemoryNetwork()
    await net.connect("a", "b")
    with pytest.raises(TypeError):
        await net.transport("a").send("b", {"type": "msgs", "msgs": [object()]})
    await net.close()


async def test_loss_drops_about_that_fraction():
    net = MemoryNetwork(loss=0.2, rng=random.Random(7))
    b = Recorder()
    net.attach("b", b)
    await net.connect("a", "b")
    for n in range(1000):
        await net.transport("a").send("b", {"n": n})
    await net.settle(5)
    assert 120 < net.dropped < 280
    assert len(b.messages) == 1000 - net.dropped
    await net.close()


async def test_messages_queued_on_a_closed_link_are_lost_and_settle_still_returns():
    net = MemoryNetwork()
    gate = asyncio.Event()

    class Slow(Recorder):
        async def on_message(self, from_peer, message):
            await gate.wait()
            await super().on_message(from_peer, message)

    b = Slow()
    net.attach("b", b)
    await net.connect("a", "b")
    for n in range(5):
        await net.transport("a").send("b", {"n": n})
    await asyncio.sleep(0.01)
    await net.disconnect("a", "b")
    gate.set()
    await net.settle(5)
    assert [m["n"] for _, m in b.messages] == [
        0
    ]  # the one already being handled; the rest died with the link
    await net.close()
