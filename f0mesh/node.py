"""Node: one peer, composed of its parts. The API and the CLI talk to this object only."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from f0mesh import __version__
from f0mesh.address_policy import AddressPolicy
from f0mesh.config import NodeConfig
from f0mesh.errors import PeerError
from f0mesh.identity import Identity, is_peer_id
from f0mesh.metrics import NodeMetrics
from f0mesh.rtc.link import Link, LinkSettings, LinkState
from f0mesh.rtc.link_manager import LinkManager
from f0mesh.rtc.signaling_client import SignalingClient
from f0mesh.store import Store

log = logging.getLogger("f0mesh.node")


class Node:
    def __init__(self, config: NodeConfig) -> None:
        self.config = config
        self.identity = Identity.load_or_create(config.data_dir)
        self.peer_id = self.identity.peer_id
        self.admin_token = config.load_admin_token()
        self.url = config.advertised_url
        self.policy = AddressPolicy(config.dial_allow)
        self.metrics = NodeMetrics(self.peer_id)
        self.started_at = time.time()
        self.store: Store
        self.client: SignalingClient
        self.links: LinkManager
        self._peers: dict[str, dict[str, Any]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._started = False

    async def start(self) -> None:
        self.store = await Store.open(self.config.resolved_store_url, self.peer_id)
        await self.store.close_stale_links("node restarted")
        for row in await self.store.list_peers(limit=10000):
            self._peers[row["peer_id"]] = row
        self.client = SignalingClient(self.policy)
        self.links = LinkManager(
            self.identity,
            local_url=self.url,
            settings=LinkSettings(
                ice_servers=self.config.ice_servers,
                heartbeat_interval=self.config.heartbeat_interval,
                heartbeat_timeout=self.config.heartbeat_timeout,
                connect_timeout=self.config.connect_timeout,
            ),
            policy=self.policy,
            client=self.client,
            delegate=self,
            max_links=self.config.max_links,
            max_pending_offers=self.config.max_pending_offers,
        )
        self._started = True
        log.info("node %s started at %s", self.peer_id, self.url)

    async def stop(self) -> None:
        if not self._started:
            return
        self._started = False
        await self.links.stop()
        await self.client.close()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=5)
        for task in self._tasks:
            task.cancel()
        await self.store.close()
        log.info("node %s stopped", self.peer_id)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- LinkDelegate ----------------------------------------------------------------------

    def link_state_changed(self, link: Link) -> None:
        self.metrics.link_state(link)
        row = link.describe()
        self._spawn(self._save_link(row))
        if link.state is LinkState.OPEN:
            self._spawn(self.store.upsert_peer(link.peer_id, last_seen=time.time()))

    async def _save_link(self, row: dict[str, Any]) -> None:
        try:
            await self.store.upsert_link(row)
        except Exception:
            log.exception("could not store link %s", row.get("link_id"))

    def link_message(self, link: Link, message: dict[str, Any]) -> None:
        log.debug("unhandled ctl message %r from %s", message.get("t"), link.peer_id)

    def link_probe(self, link: Link, data: bytes) -> None:
        return None

    def peer_learned(self, peer_id: str, url: str | None) -> None:
        record = self._peers.setdefault(peer_id, {"peer_id": peer_id, "url": None, "blocked": False})
        if url:
            record["url"] = url
        record["last_seen"] = time.time()
        self._spawn(self.store.upsert_peer(peer_id, url=url, last_seen=record["last_seen"]))

    def peer_url(self, peer_id: str) -> str | None:
        record = self._peers.get(peer_id)
        return record.get("url") if record else None

    def peer_blocked(self, peer_id: str) -> bool:
        record = self._peers.get(peer_id)
        return bool(record and record.get("blocked"))

    # -- operations used by the API and CLI -------------------------------------------------

    def health(self) -> dict[str, Any]:
        return {
            "status": "ok",
            "peer_id": self.peer_id,
            "links": len(self.links.open_links()),
            "version": __version__,
            "url": self.url,
        }

    async def add_peer(self, url: str) -> dict[str, Any]:
        """Learn a peer from its URL's /healthz and store it."""
        url = await self.policy.check_url(url)
        health = await self.client.healthz(url)
        peer_id = health["peer_id"]
        if not is_peer_id(peer_id):
            raise PeerError(f"{url}/healthz returned an invalid peer_id")
        if peer_id == self.peer_id:
            raise PeerError(f"{url} is this node itself", code="self_dial", status=409)
        self.peer_learned(peer_id, url)
        row = await self.store.upsert_peer(peer_id, url=url, last_seen=time.time())
        return self._peer_view(row)

    async def list_peers(self, limit: int) -> list[dict[str, Any]]:
        return [self._peer_view(row) for row in await self.store.list_peers(limit=limit)]

    def _peer_view(self, row: dict[str, Any]) -> dict[str, Any]:
        link = self.links.get(row["peer_id"])
        return {
            "peer_id": row["peer_id"],
            "url": row.get("url"),
            "trust": row.get("trust"),
            "last_seen": row.get("last_seen"),
            "linked": bool(link and link.state is LinkState.OPEN),
        }

    async def dial(self, *, url: str | None = None, peer_id: str | None = None) -> Link:
        if url is not None:
            return await self.links.dial_url(url)
        assert peer_id is not None
        return await self.links.dial(peer_id)

    def link_views(self) -> list[dict[str, Any]]:
        views = []
        for link in self.links.links():
            local, remote = link.ice_pair()
            views.append(
                {
                    "link_id": link.link_id,
                    "peer_id": link.peer_id,
                    "state": link.state.value,
                    "health": "unknown",
                    "rtt_ms": None,
                    "jitter_ms": None,
                    "loss_pct": None,
                    "bitrate_kbps": None,
                    "updated_at": link.closed_at or link.opened_at or link.created_at,
                    "direction": link.direction,
                    "setup_ms": link.setup_ms,
                    "reason": link.reason,
                    "ice": {"local": local, "remote": remote},
                }
            )
        return views

    async def close_link(self, peer_id: str) -> bool:
        return await self.links.close_link(peer_id)


@contextlib.asynccontextmanager
async def running(config: NodeConfig):
    node = Node(config)
    await node.start()
    try:
        yield node
    finally:
        await node.stop()
