"""Keeps this node's open links between D_lo and D_hi, in the spirit of GossipSub's mesh degree.

Below D_lo it dials known peers up to the target; above D_hi it prunes down to the target,
dropping the least valuable links first (unhealthy, then least trusted). Degree limits alone can
leave the mesh in separate islands (four nodes of degree three form a closed clique), so a node
that knows of peers it has not heard from through the mesh dials one of them, below D_hi: a
bridge, which joins the islands. Peers an operator closed,
peers that closed on us, and peers whose dial just failed wait out a cool-down before the manager
tries them again, so two managers never fight over one link. Its dials pass the link manager's dial
gate (a global rate and a per-address backoff): the candidates come from peers it did not choose.
It needs only the few calls of ``LinkSource`` from the link manager, so it is tested against a fake.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
import time
from collections.abc import Callable, Sequence
from typing import Any, Generic, Protocol, TypeVar

from f0mesh.cancellation import cancel_requested
from f0mesh.errors import F0MeshError
from f0mesh.rtc.close_reason import CloseReason
from f0mesh.rtc.degree import DegreeParams
from f0mesh.rtc.link_state import LinkState

log = logging.getLogger("f0mesh.rtc.connection_manager")


class LinkView(Protocol):
    @property
    def peer_id(self) -> str: ...
    @property
    def state(self) -> LinkState: ...
    @property
    def cause(self) -> CloseReason | None: ...


L = TypeVar("L", bound=LinkView)


class LinkSource(Protocol[L]):
    """What the manager asks of the link manager."""

    def links(self) -> Sequence[L]: ...
    def open_links(self) -> Sequence[L]: ...
    async def dial(self, peer_id: str, url: str | None = None, *, gated: bool = False) -> Any: ...
    async def close_link(
        self, peer_id: str, cause: CloseReason = ..., detail: str | None = None, *, hold: bool = True
    ) -> bool: ...


class ConnectionManager(Generic[L]):
    def __init__(
        self,
        links: LinkSource[L],
        params: DegreeParams,
        *,
        candidates: Callable[[], dict[str, str]],
        link_value: Callable[[L], float],
        heard: Callable[[], set[str]] = set,
        rng: random.Random | None = None,
    ) -> None:
        """``candidates()``: known peers id → URL; ``link_value(link)``: higher is kept when pruning;
        ``heard()``: peers whose gossip reached this node recently (so they are in the same island)."""
        self.links = links
        self.params = params
        self._candidates = candidates
        self._link_value = link_value
        self._heard = heard
        self._started_at = time.monotonic()
        self._bridged_at = -math.inf
        self._rng = rng or random.Random()
        self._cooldown: dict[str, float] = {}
        self._held: set[str] = set()
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._stopping = False

    def start(self) -> None:
        self._task = asyncio.ensure_future(self._run())

    async def stop(self) -> None:
        """Sets a flag the loop checks as well as cancelling: on Python 3.11 ``wait_for`` can swallow a
        cancellation that lands as a wake-up completes, and the loop would then run on."""
        self._stopping = True
        self._wake.set()
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def wake(self) -> None:
        self._wake.set()

    def hold(self, peer_id: str) -> None:
        """An operator closed this link: never dial it automatically until it is dialled by hand."""
        self._held.add(peer_id)

    def release(self, peer_id: str) -> None:
        self._held.discard(peer_id)

    def link_closed(self, link: L) -> None:
        """A failed link is the link manager's to redial (with backoff); this manager looks elsewhere."""
        cooldown = (
            self.params.closed_by_peer_cooldown_s
            if link.cause is CloseReason.CLOSED_BY_PEER
            else self.params.dial_failure_cooldown_s
        )
        self._cooldown[link.peer_id] = time.monotonic() + cooldown
        self.wake()

    async def _run(self) -> None:
        while not self._stopping:
            try:
                await self.tick()
            except asyncio.CancelledError:
                if self._stopping or cancel_requested():
                    raise
                log.warning("connection manager tick: a stray cancellation from a dial or close; going on")
            except Exception:
                log.exception("connection manager tick failed")
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.params.interval_s)

    async def tick(self) -> None:
        now = time.monotonic()
        self._cooldown = {peer: until for peer, until in self._cooldown.items() if until > now}
        live = [lk for lk in self.links.links() if lk.state.live]
        open_count = sum(1 for lk in live if lk.state is LinkState.OPEN)
        log.debug(
            "tick: %d live, %d open (D_lo %d, D %d, D_hi %d)",
            len(live),
            open_count,
            self.params.d_lo,
            self.params.d_target,
            self.params.d_hi,
        )
        if len(live) < self.params.d_lo or (
            open_count < self.params.d_target and len(live) < self.params.d_target
        ):
            await self._fill(self.params.d_target - len(live), {lk.peer_id for lk in live})
        elif open_count > self.params.d_hi:
            await self._prune(open_count - self.params.d_target)
        elif (
            self.params.d_target > 0  # degree 0: the operator makes every link by hand
            and len(live) < self.params.d_hi
            and time.monotonic() - self._started_at > self.params.bridge_grace_s
            and time.monotonic() - self._bridged_at >= self.params.bridge_interval_s
        ):
            await self._bridge({lk.peer_id for lk in live})

    async def _bridge(self, linked: set[str]) -> None:
        now = time.monotonic()
        heard = self._heard()
        unheard = [
            (peer_id, url)
            for peer_id, url in sorted(self._candidates().items())
            if peer_id not in linked
            and peer_id not in heard
            and peer_id not in self._held
            and self._cooldown.get(peer_id, 0) <= now
        ]
        if unheard:
            peer_id, url = self._rng.choice(unheard)
            log.info("connection manager: bridging to %s, not heard through the mesh", peer_id)
            self._bridged_at = time.monotonic()
            await self._dial(peer_id, url)

    async def _fill(self, want: int, linked: set[str]) -> None:
        now = time.monotonic()
        pool = [
            (peer_id, url)
            for peer_id, url in self._candidates().items()
            if peer_id not in linked and peer_id not in self._held and self._cooldown.get(peer_id, 0) <= now
        ]
        self._rng.shuffle(pool)
        chosen = pool[: min(want, self.params.max_parallel_dials)]
        if chosen:
            await asyncio.gather(*(self._dial(peer_id, url) for peer_id, url in chosen))

    async def _dial(self, peer_id: str, url: str) -> None:
        try:
            await self.links.dial(peer_id, url, gated=True)
        except F0MeshError as exc:
            self._cooldown[peer_id] = time.monotonic() + self.params.dial_failure_cooldown_s
            log.info("connection manager: dial %s failed: %s", peer_id, exc.detail)

    async def _prune(self, excess: int) -> None:
        ranked = sorted(self.links.open_links(), key=self._link_value)
        for link in ranked[:excess]:
            self._cooldown[link.peer_id] = time.monotonic() + self.params.closed_by_peer_cooldown_s
            await self.links.close_link(link.peer_id, CloseReason.PRUNED, hold=False)
