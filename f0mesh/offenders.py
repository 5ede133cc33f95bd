"""Offenders: neighbours the gossip score put below graylist, cut off through the link layer.

The link is closed for good with a final bye (the peer is told not to redial), its offers are
refused and the connection manager does not dial it for ``offender_backoff_s`` (PeerScoreParams);
then both holds are lifted, unless the operator has blocked the peer meanwhile. The score is kept
by PeerId, so a peer that returns carries its decayed record with it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from f0mesh.gossip.score import PeerScores
from f0mesh.rtc.close_reason import CloseReason
from f0mesh.rtc.connection_manager import ConnectionManager
from f0mesh.rtc.link_manager import LinkManager
from f0mesh.tasks import TaskSet

log = logging.getLogger(__name__)


class Offenders:
    def __init__(
        self,
        links: LinkManager,
        connmgr: ConnectionManager,
        tasks: TaskSet,
        scores: PeerScores,
        *,
        blocked: Callable[[str], bool],
    ) -> None:
        self._links = links
        self._connmgr = connmgr
        self._tasks = tasks
        self._backoff_s = scores.params.offender_backoff_s
        self._blocked = blocked
        self._score = scores.score
        self.held: set[str] = set()

    async def eject(self, peer_id: str) -> None:
        if peer_id in self.held:
            return
        self.held.add(peer_id)
        self._connmgr.hold(peer_id)
        detail = f"{self._score(peer_id):.1f}"
        await self._links.close_link(peer_id, CloseReason.OFFENDER, detail, hold=True)
        log.warning("%s disconnected (gossip score %s), held off %.0f s", peer_id, detail, self._backoff_s)
        self._tasks.spawn(self._release_later(peer_id), name="offender-backoff")

    async def _release_later(self, peer_id: str) -> None:
        await asyncio.sleep(self._backoff_s)
        self.held.discard(peer_id)
        if not self._blocked(peer_id):
            self._connmgr.release(peer_id)
            self._links.release(peer_id)
