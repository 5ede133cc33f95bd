"""What the node keeps stays bounded: old rows are pruned, and strangers leave nothing behind.

Every hour samples older than ``--sample-retention`` and messages and audit rows older than
``--gossip-retention`` are pruned. Every ``--gc-interval`` links that failed or closed more than
``--stranger-retention`` ago are forgotten with their ``mesh_links`` rows (and any beyond the newest
``link_rows_max``), and so are peers that never linked and that nothing keeps.
"""

from __future__ import annotations

import asyncio
import logging
import time

from f0mesh.config import NodeConfig
from f0mesh.errors import F0MeshError
from f0mesh.peer_book import PeerBook
from f0mesh.rtc.link_manager import LinkManager
from f0mesh.store import Store

log = logging.getLogger(__name__)

PRUNE_INTERVAL_S = 3600.0


class Retention:
    def __init__(self, config: NodeConfig, store: Store, links: LinkManager, book: PeerBook) -> None:
        self._config = config
        self._store = store
        self._links = links
        self._book = book

    async def prune(self) -> dict[str, int]:
        now = time.time()
        removed = await self._store.prune(
            samples_before=now - self._config.sample_retention_s,
            audit_before=now - self._config.gossip_retention_s,
            messages_before=now - self._config.gossip_retention_s,
        )
        if any(removed.values()):
            log.info("retention pruned %s", removed)
        return removed

    async def prune_loop(self) -> None:
        while True:
            try:
                await self.prune()
            except F0MeshError as exc:  # a full disk, an unreachable server: an operating condition
                log.warning("retention pruning failed: %s", exc.detail)
            except Exception:
                log.exception("retention pruning failed")
            await asyncio.sleep(PRUNE_INTERVAL_S)

    def _live(self, peer_id: str) -> bool:
        link = self._links.get(peer_id)
        return link is not None and link.live

    async def collect_strangers(self) -> dict[str, int]:
        """One collection; what stays is bounded by --stranger-retention (time) and link_rows_max (rows)."""
        horizon = time.time() - self._config.stranger_retention_s
        links = self._links.collect(horizon)
        rows = await self._store.prune_links(ended_before=horizon, keep=self._config.link_rows_max)
        strangers = self._book.strangers(horizon, self._live)
        for pid in strangers:
            self._book.forget(pid)
        await self._book.flush()
        removed = {"links": links, "link_rows": rows, "strangers": len(strangers)}
        if any(removed.values()):
            log.info("collected %s", removed)
        return removed

    async def gc_loop(self) -> None:
        while True:
            await asyncio.sleep(self._config.gc_interval_s)
            try:
                await self.collect_strangers()
            except Exception:
                log.exception("collecting dead links and strangers failed")
