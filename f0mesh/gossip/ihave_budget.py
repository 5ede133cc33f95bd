"""How much IHAVE one neighbour may make this node look up, per heartbeat (GossipSub's
MaxIHaveMessages / MaxIHaveLength).

Each IHAVE costs a store lookup of its ids, so a neighbour gets ``max_ihave_messages`` digests and
``max_ihave_ids`` ids per heartbeat; more is ignored (counted). The catch-up pages a neighbour
offers when its link comes up (unmarked, up to ``catchup_max_ids`` ids in digest-size pages) are
charged to a separate allowance granted once per link, so a rejoining node still catches up.
"""

from __future__ import annotations

import math

from f0mesh.gossip.params import GossipParams


class IHaveBudget:
    def __init__(self, params: GossipParams) -> None:
        self._params = params
        self._used: dict[str, list[int]] = {}  # neighbour -> [messages, ids] this heartbeat
        self._catchup: dict[str, list[int]] = {}  # neighbour -> [messages, ids] left of its catch-up

    def allow(self, peer: str, ids: int, *, page: bool) -> bool:
        """Whether to look at an IHAVE of ``ids`` ids (``page``: unmarked, a catch-up page), charged if so."""
        if page:
            left = self._catchup.setdefault(peer, self._catchup_allowance())
            if left[0] >= 1 and left[1] >= ids:
                left[0] -= 1
                left[1] -= ids
                return True
        used = self._used.setdefault(peer, [0, 0])
        if used[0] + 1 > self._params.max_ihave_messages or used[1] + ids > self._params.max_ihave_ids:
            return False
        used[0] += 1
        used[1] += ids
        return True

    def reset(self) -> None:
        """A new heartbeat: every neighbour's per-heartbeat budget is whole again."""
        self._used.clear()

    def forget(self, peer: str) -> None:
        self._used.pop(peer, None)
        self._catchup.pop(peer, None)

    def _catchup_allowance(self) -> list[int]:
        p = self._params
        pages = math.ceil(p.catchup_max_ids / p.repair_digest_size) + 2  # + the ask-back and an empty page
        return [pages, p.catchup_max_ids]
