"""Offenders: a neighbour below graylist is closed for good and held off for the backoff, then let back
in, unless the operator blocked it meanwhile."""

from __future__ import annotations

from dataclasses import replace

from f0mesh.gossip.score import PeerScoreParams, PeerScores
from f0mesh.offenders import Offenders
from f0mesh.rtc.close_reason import CloseReason
from f0mesh.tasks import TaskSet


class FakeLinks:
    def __init__(self) -> None:
        self.closed: list[tuple[str, CloseReason, str | None, bool]] = []
        self.released: list[str] = []

    async def close_link(self, peer_id, cause, detail=None, *, hold=True):
        self.closed.append((peer_id, cause, detail, hold))
        return True

    def release(self, peer_id):
        self.released.append(peer_id)


class FakeConnmgr:
    def __init__(self) -> None:
        self.held: set[str] = set()

    def hold(self, peer_id):
        self.held.add(peer_id)

    def release(self, peer_id):
        self.held.discard(peer_id)


async def test_an_offender_is_closed_held_and_released_after_the_backoff_unless_blocked() -> None:
    scores = PeerScores(replace(PeerScoreParams(), offender_backoff_s=0.05))
    for _ in range(3):
        scores.invalid("bad")
        scores.invalid("blocked")
    links, connmgr, tasks, blocked = FakeLinks(), FakeConnmgr(), TaskSet("test"), {"blocked"}
    offenders = Offenders(links, connmgr, tasks, scores, blocked=blocked.__contains__)  # type: ignore[arg-type]
    await offenders.eject("bad")
    await offenders.eject("bad")  # already held: nothing more
    await offenders.eject("blocked")
    assert links.closed == [
        ("bad", CloseReason.OFFENDER, "-90.0", True),
        ("blocked", CloseReason.OFFENDER, "-90.0", True),
    ]
    assert connmgr.held == {"bad", "blocked"}
    await tasks.close(5.0)  # lets the backoffs run out
    assert not offenders.held and connmgr.held == {"blocked"} and links.released == ["bad"]
