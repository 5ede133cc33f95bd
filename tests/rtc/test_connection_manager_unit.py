"""The connection manager against a fake link source: fast, and able to inject what aiortc does."""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass

from bare_link import bare_link

from f0mesh.errors import PeerError
from f0mesh.rtc.close_reason import CloseReason
from f0mesh.rtc.connection_manager import ConnectionManager, DegreeParams
from f0mesh.rtc.link import LinkState


@dataclass
class FakeLink:
    peer_id: str
    state: LinkState = LinkState.OPEN
    cause: CloseReason | None = None
    value: float = 0.0


class FakeLinks:
    """Links by peer, as the link manager offers them; the first ``stray`` closes raise CancelledError
    as aiortc's close can, and dials of peers in ``unreachable`` fail."""

    def __init__(
        self, peers: list[str], *, stray: int = 0, unreachable: frozenset[str] = frozenset()
    ) -> None:
        self._links = {p: FakeLink(p) for p in peers}
        self.stray = stray
        self.unreachable = unreachable
        self.closed: list[tuple[str, CloseReason, bool]] = []
        self.dialled: list[tuple[str, bool]] = []

    def links(self) -> list[FakeLink]:
        return list(self._links.values())

    def open_links(self) -> list[FakeLink]:
        return [lk for lk in self._links.values() if lk.state is LinkState.OPEN]

    async def dial(self, peer_id: str, url: str | None = None, *, gated: bool = False) -> FakeLink:
        self.dialled.append((peer_id, gated))
        if peer_id in self.unreachable:
            raise PeerError(f"link to {peer_id} failed")
        self._links[peer_id] = FakeLink(peer_id)
        return self._links[peer_id]

    async def close_link(
        self,
        peer_id: str,
        cause: CloseReason = CloseReason.OPERATOR,
        detail: str | None = None,
        *,
        hold: bool = True,
    ) -> bool:
        await asyncio.sleep(0)
        if self.stray:
            self.stray -= 1
            raise asyncio.CancelledError  # nobody cancelled the caller: a stray one from inside aiortc
        self._links[peer_id].state = LinkState.CLOSED
        self._links[peer_id].cause = cause
        self.closed.append((peer_id, cause, hold))
        return True


def _manager(
    links: FakeLinks, candidates: dict[str, str] | None = None, **params: float
) -> ConnectionManager[FakeLink]:
    degree = DegreeParams(d_lo=2, d_target=3, d_hi=4, interval_s=0.01, bridge_grace_s=3600)
    for name, value in params.items():
        setattr(degree, name, value)
    return ConnectionManager(
        links,
        degree,
        candidates=lambda: dict(candidates or {}),
        link_value=lambda link: link.value,
        rng=random.Random(1),
    )


async def _settle(links: FakeLinks, want: int) -> None:
    for _ in range(500):
        if len(links.open_links()) <= want:
            return
        await asyncio.sleep(0.01)


async def test_pruning_above_d_hi_closes_the_least_valuable_links_down_to_the_target() -> None:
    links = FakeLinks([f"p{i}" for i in range(6)])
    for i, link in enumerate(links.links()):
        link.value = [5, 0, 3, 1, 4, 2][i]  # p1, p3, p5 are worth least
    await _manager(links).tick()
    assert sorted(peer for peer, _, _ in links.closed) == ["p1", "p3", "p5"]
    assert all(cause is CloseReason.PRUNED and not hold for _, cause, hold in links.closed), links.closed


async def test_no_pruning_at_d_hi() -> None:
    links = FakeLinks([f"p{i}" for i in range(4)])
    await _manager(links).tick()
    assert links.closed == []


async def test_filling_below_d_lo_dials_towards_the_target_with_at_most_the_parallel_limit() -> None:
    links = FakeLinks(["p0"])
    candidates = {f"c{i}": f"http://c{i}" for i in range(10)} | {"p0": "http://p0"}
    manager = _manager(links, candidates, d_target=6, d_hi=8, max_parallel_dials=3)
    await manager.tick()
    assert len(links.dialled) == 3
    assert all(gated and peer != "p0" for peer, gated in links.dialled), "linked peers are not dialled again"


async def test_held_peers_and_failed_dials_are_left_alone_for_the_cool_down() -> None:
    links = FakeLinks([], unreachable=frozenset({"bad"}))
    manager = _manager(links, {"bad": "http://bad", "held": "http://held"}, d_lo=1, d_target=1)
    manager.hold("held")
    await manager.tick()
    assert links.dialled == [("bad", True)]
    await manager.tick()
    assert links.dialled == [("bad", True)], "a failed dial waits out its cool-down"
    manager.release("held")
    await manager.tick()
    assert links.dialled[-1] == ("held", True)


async def test_a_peer_that_closed_for_good_cools_down_longer_than_a_failed_link() -> None:
    manager = _manager(FakeLinks([]), dial_failure_cooldown_s=30.0, closed_by_peer_cooldown_s=1000.0)
    manager.link_closed(FakeLink("gone", LinkState.CLOSED, CloseReason.CLOSED_BY_PEER))
    manager.link_closed(FakeLink("flaky", LinkState.FAILED, CloseReason.HEARTBEAT))
    assert manager._cooldown["gone"] - manager._cooldown["flaky"] > 900


async def test_a_stray_cancellation_from_a_close_does_not_end_the_loop() -> None:
    links = FakeLinks([f"p{i}" for i in range(6)], stray=1)
    manager = _manager(links)
    manager.start()
    try:
        await _settle(links, 3)
        assert len(links.open_links()) == 3, "the loop stopped pruning after the stray cancellation"
    finally:
        await manager.stop()
    assert manager._task is not None and manager._task.done()


async def test_stop_still_cancels_the_loop() -> None:
    links = FakeLinks([f"p{i}" for i in range(3)])
    manager = _manager(links)
    manager.start()
    await asyncio.sleep(0.05)
    await asyncio.wait_for(manager.stop(), 5)
    assert manager._task is not None and manager._task.done()


async def test_link_close_survives_a_stray_cancellation_from_aiortc() -> None:
    states: list[LinkState] = []
    link = bare_link(on_state=lambda link: states.append(link.state))
    real_close = link.pc.close

    async def stray_close() -> None:
        await real_close()
        raise asyncio.CancelledError

    link.pc.close = stray_close  # type: ignore[method-assign]
    await link.close(CloseReason.PRUNED)
    assert link.state is LinkState.CLOSED
    assert (link.cause, link.reason) == (CloseReason.PRUNED, "pruned: above D_hi")
    assert states == [LinkState.CLOSED], "the registry was never told that the link closed"
