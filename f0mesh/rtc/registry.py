"""The rules of this node's link registry, without I/O: which links it keeps and which it refuses.

One live link per peer, whoever dials. Simultaneous dials (glare) are resolved by a fixed rule: the
offer of the smaller PeerId wins. The smaller side refuses an offer (409 glare) while it holds a live
link it dialled itself; the larger side lets any offer replace its link. Peers whose link was open
(or that an operator dialled) are wanted and are redialled with capped exponential backoff, reset by
an open link, until an operator closes the link or ``give_up_s`` passes without one. An operator's
close also holds the peer: its offers are refused until this node dials it again.

Everything here is plain state and decisions, as in aioquic's connection core: the clock and the
random source are passed in, refusals are the errors the HTTP API returns, and
``rtc/link_manager.py`` is the asyncio adapter that asks and then does the aiortc calls.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

from f0mesh.errors import ConflictError, NotFoundError, PolicyError, RateLimitedError
from f0mesh.rtc.close_reason import CloseReason
from f0mesh.rtc.link_state import LinkState


class LinkLike(Protocol):
    """What the registry reads of a link."""

    @property
    def peer_id(self) -> str: ...
    @property
    def direction(self) -> str: ...  # "out": this node dialled; "in": it answered an offer
    @property
    def state(self) -> LinkState: ...
    @property
    def cause(self) -> CloseReason | None: ...
    @property
    def remote_url(self) -> str | None: ...
    @property
    def created_at(self) -> float: ...
    @property
    def closed_at(self) -> float | None: ...


L = TypeVar("L", bound=LinkLike)


@dataclass(frozen=True)
class RegistryParams:
    max_links: int = 64
    max_pending_offers: int = 32
    redial_base_s: float = 1.0
    redial_max_s: float = 15.0
    redial_give_up_s: float = 600.0


class Backoff:
    """Delays from ``base`` doubling to ``cap``, each jittered ±20 % so peers that lost one link
    together do not redial in step; None once ``give_up_s`` has passed since the first delay."""

    def __init__(self, base: float, cap: float, give_up_s: float, now: float, rng: random.Random) -> None:
        self._delay = base
        self._cap = cap
        self._deadline = now + give_up_s
        self._rng = rng

    def next(self, now: float) -> float | None:
        if now > self._deadline:
            return None
        delay = self._delay * self._rng.uniform(0.8, 1.2)
        self._delay = min(self._delay * 2, self._cap)
        return delay


class LinkRegistry(Generic[L]):
    def __init__(
        self, local_peer_id: str, params: RegistryParams, *, rng: random.Random | None = None
    ) -> None:
        self.local_peer_id = local_peer_id
        self.params = params
        self._rng = rng or random.Random()
        self._links: dict[str, L] = {}
        self._wanted: dict[str, str | None] = {}
        self._held: set[str] = set()
        self._backoff: dict[str, Backoff] = {}

    # -- queries ---------------------------------------------------------------------------

    def get(self, peer_id: str) -> L | None:
        return self._links.get(peer_id)

    def links(self) -> list[L]:
        return list(self._links.values())

    def open_links(self) -> list[L]:
        return [link for link in self._links.values() if link.state is LinkState.OPEN]

    def has_live(self, peer_id: str) -> bool:
        link = self._links.get(peer_id)
        return link is not None and link.state.live

    def wanted(self) -> dict[str, str | None]:
        return dict(self._wanted)

    def is_wanted(self, peer_id: str) -> bool:
        return peer_id in self._wanted

    def wanted_url(self, peer_id: str) -> str | None:
        return self._wanted.get(peer_id)

    # -- admission -------------------------------------------------------------------------

    def check_dial(self, peer_id: str, *, blocked: bool) -> None:
        if peer_id == self.local_peer_id:
            raise ConflictError("a node does not link to itself", code="self_dial")
        if blocked:
            raise PolicyError(f"peer {peer_id} is blocked")

    def operator_dial(self, peer_id: str, url: str | None) -> None:
        """An operator asked for this peer: its hold is lifted and it is wanted from now on."""
        self._held.discard(peer_id)
        self._wanted[peer_id] = url

    def check_new_dial(self, peer_id: str, url: str | None, relays: list[str]) -> None:
        """Before a new outbound link: a way to reach the peer and room for one more open link."""
        if url is None and not relays:
            raise NotFoundError(
                f"no URL and no relay known for peer {peer_id}; add it with POST /api/peers first"
            )
        if len(self.open_links()) >= self.params.max_links:
            raise RateLimitedError(f"this node already has {self.params.max_links} links (the maximum)")

    def check_offer(self, peer_id: str, *, blocked: bool) -> None:
        """Refuse before anything is created: a refused offer leaves no trace."""
        if blocked:
            raise PolicyError(f"peer {peer_id} is blocked")
        if peer_id in self._held:
            raise PolicyError(
                "this node's operator closed the link to you; it reopens when dialled from here"
            )
        existing = self._links.get(peer_id)
        live = sum(1 for link in self._links.values() if link.state.live)
        if (existing is None or not existing.state.live) and live >= self.params.max_links:
            raise RateLimitedError(f"this node already has {self.params.max_links} links (the maximum)")
        connecting_in = sum(
            1
            for link in self._links.values()
            if link.state is LinkState.CONNECTING and link.direction == "in"
        )
        if connecting_in >= self.params.max_pending_offers:
            raise RateLimitedError(f"{connecting_in} offers are already being answered (the maximum)")
        if (
            existing is not None
            and existing.state.live
            and existing.direction == "out"
            and self.local_peer_id < peer_id
        ):
            raise ConflictError(
                "glare: both peers dialled; the smaller PeerId's offer wins (mine)", code="glare"
            )

    # -- changes ---------------------------------------------------------------------------

    def add(self, link: L) -> L | None:
        """Register a new link; returns the live link it replaces, for the caller to close."""
        old = self._links.get(link.peer_id)
        self._links[link.peer_id] = link
        return old if old is not None and old.state.live else None

    def discard(self, link: L) -> bool:
        """Forget a link that never became one (refused, lost the glare); False if another replaced it."""
        if self._links.get(link.peer_id) is not link:
            return False
        del self._links[link.peer_id]
        return True

    def close_for_good(self, peer_id: str, *, hold: bool) -> None:
        """The peer is no longer wanted; ``hold`` also refuses its offers until this node dials it."""
        self._wanted.pop(peer_id, None)
        self._backoff.pop(peer_id, None)
        if hold:
            self._held.add(peer_id)

    def release(self, peer_id: str) -> None:
        self._held.discard(peer_id)

    def changed(self, link: L) -> bool:
        """A link changed state; True when the peer should now be redialled."""
        peer_id = link.peer_id
        if link.state is LinkState.OPEN:
            self._wanted[peer_id] = link.remote_url or self._wanted.get(peer_id)
            self._backoff.pop(peer_id, None)
            return False
        if link.state.live:
            return False
        if link.cause is CloseReason.CLOSED_BY_PEER:
            self._wanted.pop(peer_id, None)
        return self._links.get(peer_id) is link and peer_id in self._wanted

    def redial_delay(self, peer_id: str, now: float) -> float | None:
        """How long to wait before the next redial; None: give up (the peer is no longer wanted)."""
        backoff = self._backoff.get(peer_id)
        if backoff is None:
            p = self.params
            backoff = self._backoff[peer_id] = Backoff(
                p.redial_base_s, p.redial_max_s, p.redial_give_up_s, now, self._rng
            )
        delay = backoff.next(now)
        if delay is None:
            self._wanted.pop(peer_id, None)
            del self._backoff[peer_id]
        return delay

    def collect(self, closed_before: float) -> int:
        """Forget links that failed or closed before ``closed_before`` (wall clock); returns how many."""
        gone = [
            peer_id
            for peer_id, link in self._links.items()
            if not link.state.live and (link.closed_at or link.created_at) < closed_before
        ]
        for peer_id in gone:
            del self._links[peer_id]
        for peer_id in [p for p in self._backoff if p not in self._wanted]:
            del self._backoff[peer_id]
        return len(gone)
