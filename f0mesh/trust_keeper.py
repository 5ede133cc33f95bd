"""The trust keeper: keeps the trust layer's scores current, saved and this node's opinions published.

TrustService computes; this keeps it alive in a node: it loads and saves the opinions (``crdt_state``
row ``_trust``), recomputes scores every ``TRUST_REFRESH_S``, writes them to ``mesh_peers`` at most
every ``TRUST_SCORES_SAVE_S`` (those are for operators; the live ones sit in memory), and gossips
this node's opinions on topic ``trust`` when they changed enough.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable
from typing import Any

import msgpack

from f0mesh.errors import F0MeshError
from f0mesh.gossip import GossipEngine, StoredMessage
from f0mesh.store import Store
from f0mesh.trust import Event, TrustService

log = logging.getLogger(__name__)

TRUST_TOPIC = "trust"
TRUST_STATE = "_trust"
TRUST_REFRESH_S = 5.0
TRUST_SCORES_SAVE_S = 30.0


class TrustKeeper:
    def __init__(
        self, trust: TrustService, store: Store, gossip: GossipEngine, *, linked: Callable[[], bool]
    ) -> None:
        """``linked()``: whether any link is open (opinions published to nobody are not marked sent)."""
        self.trust = trust
        self._store = store
        self._gossip = gossip
        self._linked = linked
        self._unsaved = False
        self._saved_at = -math.inf
        gossip.subscribe(TRUST_TOPIC, self._delivered)

    @staticmethod
    async def load(trust: TrustService, store: Store) -> None:
        saved = await store.get_state(TRUST_STATE)
        if saved is not None:
            trust.load(msgpack.unpackb(saved[1]))

    def _delivered(self, message: StoredMessage) -> None:
        if message.origin != self.trust.self_id:
            self.trust.apply_published(message.origin, message.payload)

    def view(self) -> dict[str, Any]:
        trust = self.trust
        return {"scores": trust.scores(), "edges": trust.graph.edges(), "components": trust.components()}

    async def set_trust(self, peer_id: str, weight: float) -> None:
        self.trust.set_opinion(peer_id, weight)
        await self.save()
        await self._store.set_peer_trust(self.trust.scores())

    async def save(self) -> None:
        await self._store.put_state(TRUST_STATE, "trust", msgpack.packb(self.trust.to_dict()))

    async def step(self) -> None:
        """One round: refresh, save the scores when due, publish the opinions when due."""
        self._unsaved = self.trust.refresh() or self._unsaved
        if self._unsaved and time.monotonic() - self._saved_at >= TRUST_SCORES_SAVE_S:
            await self._store.set_peer_trust(self.trust.scores())
            self._unsaved, self._saved_at = False, time.monotonic()
        payload = self.trust.opinions_due() if self._linked() else None
        if payload is not None:
            await self._gossip.publish(TRUST_TOPIC, payload)
            self.trust.mark_published(payload)
            await self.save()

    async def loop(self) -> None:
        while True:
            await asyncio.sleep(TRUST_REFRESH_S)
            try:
                await self.step()
            except F0MeshError as exc:  # e.g. the node is busy (429): the next round tries again
                log.info("trust opinions not published: %s", exc.detail)
            except Exception:
                log.exception("trust refresh failed")


def record_violation(trust: TrustService, peer_id: str, what: str) -> None:
    """A peer broke a protocol below gossip (framing, ctl, state, sig): its behaviour score pays."""
    trust.record(peer_id, Event.REPLAY if what == "clock_skew" else Event.MALFORMED)
