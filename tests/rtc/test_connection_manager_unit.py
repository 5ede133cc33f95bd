"""The connection manager's loop against a fake link registry: fast, and able to inject what aiortc does."""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass

from f0mesh.rtc.connection_manager import ConnectionManager, DegreeParams
from f0mesh.rtc.link import Link, LinkSettings, LinkState


@dataclass
class FakeLink:
    peer_id: str
    state: LinkState = LinkState.OPEN
    opened_at: float = 0.0

    @property
    def live(self) -> bool:
        return self.state in (LinkState.CONNECTING, LinkState.OPEN)


class FakeLinks:
    """Open links by peer; the first ``stray`` closes raise CancelledError as aiortc's close can."""

    def __init__(self, peers: list[str], *, stray: int = 0) -> None:
        self._links = {p: FakeLink(p) for p in peers}
        self.stray = stray
        self.closed: list[str] = []

    def links(self) -> list[FakeLink]:
        return list(self._links.values())

    def open_links(self) -> list[FakeLink]:
        return [lk for lk in self._links.values() if lk.state is LinkState.OPEN]

    async def dial(self, peer_id: str, url: str) -> FakeLink:
        self._links[peer_id] = FakeLink(peer_id)
        return self._links[peer_id]

    async def close_link(self, peer_id: str, reason: str, *, hold: bool = True) -> bool:
        await asyncio.sleep(0)
        if self.stray:
            self.stray -= 1
            raise asyncio.CancelledError  # nobody cancelled the caller: a stray one from inside aiortc
        self._links[peer_id].state = LinkState.CLOSED
        self.closed.append(peer_id)
        return True


def _manager(links: FakeLinks) -> ConnectionManager:
    params = DegreeParams(d_lo=2, d_target=3, d_hi=4, interval_s=0.01, bridge_grace_s=3600)
    return ConnectionManager(
        links,  # type: ignore[arg-type]
        params,
        candidates=dict,
        link_value=lambda link: 0.0,
        rng=random.Random(1),
    )


async def _settle(links: FakeLinks, want: int) -> None:
    for _ in range(500):
        if len(links.open_links()) <= want:
            return
        await asyncio.sleep(0.01)


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
    link = Link(
        peer_id="peer",
        direction="out",
        local_peer_id="me",
        local_url=None,
        settings=LinkSettings(ice_servers=[]),
        on_message=lambda link, message: None,
        on_probe=lambda link, data: None,
        on_state=lambda link: states.append(link.state),
    )
    real_close = link.pc.close

    async def stray_close() -> None:
        await real_close()
        raise asyncio.CancelledError

    link.pc.close = stray_close  # type: ignore[method-assign]
    await link.close("pruned: above D_hi")
    assert link.state is LinkState.CLOSED
    assert states == [LinkState.CLOSED], "the registry was never told that the link closed"
