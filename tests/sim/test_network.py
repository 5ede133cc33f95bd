"""SimNetwork: latency, order, loss, link closure; the partial view; Serf's reference figures."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import pytest

from f0mesh.gossip import LinkClosedError
from f0mesh.sim import serf
from f0mesh.sim.clock import run_virtual
from f0mesh.sim.network import Degree, LatencyModel, SimNetwork, components_of, partial_view


class Recorder:
    def __init__(self) -> None:
        self.got: list[tuple[float, str, Any]] = []
        self.up: list[str] = []
        self.down: list[str] = []

    async def on_message(self, from_peer: str, message: dict[str, Any]) -> None:
        self.got.append((asyncio.get_running_loop().time(), from_peer, message["n"]))

    async def on_neighbour_up(self, peer_id: str) -> None:
        self.up.append(peer_id)

    async def on_neighbour_down(self, peer_id: str) -> None:
        self.down.append(peer_id)


def _pair(network: SimNetwork) -> tuple[Recorder, Recorder]:
    a, b = Recorder(), Recorder()
    network.add_peer("a", region=0, access_s=0.01)
    network.add_peer("b", region=3, access_s=0.02)  # us-east to ap-southeast: 215 ms round trip
    network.attach("a", a)
    network.attach("b", b)
    return a, b


def test_messages_arrive_after_the_one_way_latency_and_in_order() -> None:
    async def main() -> Recorder:
        network = SimNetwork(latency=LatencyModel(jitter_mean_ms=20.0), rng=random.Random(1))
        _, b = _pair(network)
        await network.connect("a", "b")
        for n in range(50):
            await network.transport("a").send("b", {"type": "x", "n": n})
        await asyncio.sleep(5)
        return b

    b = run_virtual(main())
    assert [n for _, _, n in b.got] == list(range(50))  # jitter never reorders a channel
    assert b.got[0][0] >= 0.1075 + 0.03  # half of 215 ms plus both access delays
    assert all(t1 <= t2 for (t1, _, _), (t2, _, _) in zip(b.got, b.got[1:], strict=False))


def test_loss_drops_about_that_share_and_closed_links_drop_everything() -> None:
    async def main() -> tuple[int, int, Recorder, Recorder]:
        network = SimNetwork(loss=0.3, rng=random.Random(2))
        a, b = _pair(network)
        await network.connect("a", "b")
        for n in range(2000):
            await network.transport("a").send("b", {"type": "x", "n": n})
        await asyncio.sleep(1)
        received = len(b.got)
        for n in range(10):  # in flight when the link closes: lost
            await network.transport("a").send("b", {"type": "x", "n": n})
        await network.disconnect("a", "b")
        await asyncio.sleep(1)
        with pytest.raises(LinkClosedError):
            await network.transport("a").send("b", {"type": "x", "n": 0})
        return received, len(b.got), a, b

    received, after, a, b = run_virtual(main())
    assert 1300 < received < 1500
    assert after == received
    assert a.up == ["b"] and b.up == ["a"] and a.down == ["b"] and b.down == ["a"]


def test_partial_view_keeps_degrees_in_bounds_and_the_mesh_connected() -> None:
    n = 2000
    edges = partial_view(n, random.Random(3), Degree(d_lo=4, d=6, d_hi=12))
    adjacent: list[set[int]] = [set() for _ in range(n)]
    for a, b in edges:
        adjacent[a].add(b)
        adjacent[b].add(a)
    degrees = [len(s) for s in adjacent]
    assert min(degrees) >= 6 and max(degrees) <= 13  # a bridge may add one past d_hi
    assert 6.5 < sum(degrees) / n < 9
    assert len(components_of(adjacent)) == 1


def test_serf_model_gives_the_published_convergence_figures() -> None:
    assert serf.time_to(1000, 0.999) == pytest.approx(2.0)
    assert serf.time_to(10_000, 0.999) == pytest.approx(2.2)
    assert serf.time_to(1000, 0.999, loss=0.5) == pytest.approx(3.8)
    assert serf.time_to(100, 1.0) >= serf.time_to(100, 0.999)
