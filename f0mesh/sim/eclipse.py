"""An eclipse attack on one peer's links, decided by the real connection manager's pruning rule.

Sybils dial one honest victim until its links are over D_hi; the victim's ConnectionManager (the
node's own, on a LinkSource that opens and closes SimNetwork links) then prunes down to D, lowest
link value first. The Sybils dial again, and so on for a number of rounds, and finally fill the
victim's links up to D_hi. What the victim keeps is decided only by its link value: by trust, the
Sybils (which earned no honest peer's trust) go first and the honest links stay; at random, every
round costs honest links that nothing brings back, since the victim is never below D_lo to dial.
Honest peers the victim dropped dial a replacement if they fall below D_lo, as theirs would.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from f0mesh.rtc.close_reason import CloseReason
from f0mesh.rtc.connection_manager import ConnectionManager
from f0mesh.rtc.degree import DegreeParams
from f0mesh.rtc.link_state import LinkState
from f0mesh.sim.mesh import SimMesh


@dataclass(frozen=True, slots=True)
class _SimLink:
    peer_id: str
    state: LinkState = LinkState.OPEN
    cause: CloseReason | None = None


class _VictimLinks:
    """The victim's links as the connection manager sees them (its LinkSource)."""

    def __init__(self, mesh: SimMesh, victim: int) -> None:
        self._mesh = mesh
        self._me = mesh.peer_id(victim)

    def links(self) -> list[_SimLink]:
        return [_SimLink(peer) for peer in self._mesh.network.neighbours(self._me)]

    def open_links(self) -> list[_SimLink]:
        return self.links()

    async def dial(self, peer_id: str, url: str | None = None, *, gated: bool = False) -> None:
        await self._mesh.network.connect(self._me, peer_id)

    async def close_link(
        self,
        peer_id: str,
        cause: CloseReason = CloseReason.PRUNED,
        detail: str | None = None,
        *,
        hold: bool = True,
    ) -> bool:
        await self._mesh.network.disconnect(self._me, peer_id)
        return True


async def attack(
    mesh: SimMesh,
    victim: int,
    attackers: Sequence[int],
    rounds: int,
    value: Callable[[str], float],
    rng: random.Random,
) -> dict[str, Any]:
    """Run the attack; ``value(peer_id)`` is the victim's link value (higher is kept when pruning)."""
    network, bounds = mesh.network, mesh.degree
    me = mesh.peer_id(victim)
    manager: ConnectionManager[_SimLink] = ConnectionManager(
        _VictimLinks(mesh, victim),
        DegreeParams(d_lo=bounds.d_lo, d_target=bounds.d, d_hi=bounds.d_hi),
        candidates=dict,  # the victim dials nobody of its own accord: it is never below D_lo
        link_value=lambda link: value(link.peer_id),
        rng=random.Random(rng.random()),
    )

    def honest_links() -> list[int]:
        return [i for i in (mesh.by_peer[p] for p in network.neighbours(me)) if i not in mesh.sybil_set]

    async def dial_until(limit: int) -> None:
        for sybil in rng.sample(list(attackers), len(attackers)):
            if network.degree(me) >= limit:
                return
            await network.connect(mesh.peer_id(sybil), me)

    before = len(honest_links())
    for _ in range(rounds):
        await dial_until(bounds.d_hi + 1)
        kept = set(honest_links())
        await manager.tick()
        for dropped in kept - set(honest_links()):
            if network.degree(mesh.peer_id(dropped)) < bounds.d_lo:
                await mesh.dial_up(dropped)
    await dial_until(bounds.d_hi)
    return {"honest_links_before": before, "honest_links_after": len(honest_links()), "rounds": rounds}
