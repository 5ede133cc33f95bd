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
from f0mesh.peer_record import PeerRecord
from f0mesh.qos.sampler import QoSSampler, Sample
from f0mesh.rtc.connection_manager import ConnectionManager, DegreeParams
from f0mesh.rtc.link import Link, LinkSettings, LinkState
from f0mesh.rtc.link_manager import LinkManager
from f0mesh.rtc.signaling_client import SignalingClient
from f0mesh.store import Store

log = logging.getLogger("f0mesh.node")

PEX_INTERVAL_S = 30.0
PEX_MAX_RECORDS = 64


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
                relay_only=self.config.ice_relay_only,
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
        self.connmgr = ConnectionManager(
            self.links,
            DegreeParams(d_lo=self.config.d_lo, d_target=self.config.d_target, d_hi=self.config.d_hi),
            candidates=self._dial_candidates,
            link_value=self._link_value,
        )
        self._records: dict[str, PeerRecord] = {}
        self.qos = QoSSampler(
            interval=self.config.qos_interval,
            probe_rate=self.config.probe_rate,
            on_sample=self._store_samples,
            on_health_change=self._health_changed,
        )
        self._started = True
        self.qos.start()
        self.connmgr.start()
        self._spawn(self._bootstrap())
        self._spawn(self._pex_loop())
        self._spawn(self._retention_loop())
        log.info("node %s started at %s", self.peer_id, self.url)

    async def stop(self) -> None:
        if not self._started:
            return
        self._started = False
        await self.connmgr.stop()
        await self.qos.stop()
        for task in self._tasks:
            task.cancel()
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
            self.qos.add(link)
            self._spawn(self.store.upsert_peer(link.peer_id, last_seen=time.time()))
            self._spawn(self._send_pex(link))
        elif link.state in (LinkState.FAILED, LinkState.CLOSED) and self._started:
            self.qos.remove(link.link_id)
            if self.links.get(link.peer_id) in (None, link):
                self.metrics.link_gone(link.peer_id)
            self.connmgr.link_closed(link)

    async def _save_link(self, row: dict[str, Any]) -> None:
        try:
            await self.store.upsert_link(row)
        except Exception:
            log.exception("could not store link %s", row.get("link_id"))

    def link_message(self, link: Link, message: dict[str, Any]) -> None:
        kind = message["t"]
        if kind == "pex":
            self._on_pex(link, message)
        else:
            log.debug("unhandled ctl message %r from %s", kind, link.peer_id)

    def link_probe(self, link: Link, data: bytes) -> None:
        self.qos.on_probe(link, data)

    async def _store_samples(self, samples: list[Sample]) -> None:
        current = []
        for s in samples:
            figures = {
                "rtt_ms": s.rtt_ms,
                "jitter_ms": s.jitter_ms,
                "loss_pct": s.loss_pct,
                "bitrate_kbps": s.bitrate_kbps,
            }
            self.metrics.link_sample(s.peer_id, figures, s.health)
            current.append({"link_id": s.link_id, "peer_id": s.peer_id, "health": s.health, **figures})
        await self.store.add_samples([s.row() for s in samples], current)

    def _health_changed(self, link: Any, old: str, new: str) -> None:
        log.info("link %s to %s: health %s -> %s", link.link_id, link.peer_id, old, new)

    def peer_learned(self, peer_id: str, url: str | None, *, seen: float | None = None) -> None:
        record = self._peers.setdefault(peer_id, {"peer_id": peer_id, "url": None, "blocked": False})
        if url:
            record["url"] = url
        record["last_seen"] = max(record.get("last_seen") or 0.0, seen or time.time())
        self._spawn(self.store.upsert_peer(peer_id, url=url, last_seen=record["last_seen"]))

    def peer_url(self, peer_id: str) -> str | None:
        record = self._peers.get(peer_id)
        return record.get("url") if record else None

    def peer_blocked(self, peer_id: str) -> bool:
        record = self._peers.get(peer_id)
        return bool(record and record.get("blocked"))

    async def _retention_loop(self) -> None:
        """Old samples and audit rows are pruned hourly so the store stays bounded."""
        while True:
            now = time.time()
            try:
                removed = await self.store.prune(
                    samples_before=now - self.config.sample_retention_s,
                    audit_before=now - self.config.gossip_retention_s,
                    messages_before=now - self.config.gossip_retention_s,
                )
                if any(removed.values()):
                    log.info("retention pruned %s", removed)
            except Exception:
                log.exception("retention pruning failed")
            await asyncio.sleep(3600)

    # -- membership: bootstrap, peer exchange, degree ---------------------------------------

    def _dial_candidates(self) -> dict[str, str]:
        return {
            pid: rec["url"]
            for pid, rec in self._peers.items()
            if rec.get("url") and not rec.get("blocked") and pid != self.peer_id
        }

    def _link_value(self, link: Link) -> float:
        """Pruning order: the lowest value goes first. Older links are worth a little more."""
        age = time.time() - (link.opened_at or time.time())
        return min(age, 600.0) / 600.0

    async def _bootstrap(self) -> None:
        """Learn the bootstrap peers; retried with backoff until each answered once."""
        pending = list(self.config.bootstrap)
        delay = 1.0
        while pending:
            for url in list(pending):
                try:
                    await self.add_peer(url)
                    pending.remove(url)
                except Exception as exc:
                    log.info("bootstrap %s not reachable yet: %s", url, getattr(exc, "detail", exc))
            self.connmgr.wake()
            if pending:
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)

    def own_record(self) -> PeerRecord:
        return PeerRecord.create(self.identity, self.url, self.config.location)

    async def _send_pex(self, link: Link) -> None:
        records = [self.own_record()]
        fresh = sorted(self._records.values(), key=lambda r: r.seen, reverse=True)
        records += [r for r in fresh if r.peer_id != link.peer_id][: PEX_MAX_RECORDS - 1]
        try:
            await link.send({"t": "pex", "records": [r.to_wire() for r in records]})
        except Exception as exc:
            log.debug("pex to %s failed: %s", link.peer_id, exc)

    async def _pex_loop(self) -> None:
        while True:
            await asyncio.sleep(PEX_INTERVAL_S)
            for link in self.links.open_links():
                await self._send_pex(link)

    def _on_pex(self, link: Link, message: dict[str, Any]) -> None:
        records = message.get("records")
        if not isinstance(records, list):
            log.info("malformed pex from %s", link.peer_id)
            return
        learned = 0
        for raw in records[:PEX_MAX_RECORDS]:
            try:
                record = PeerRecord.from_wire(raw)
            except ValueError as exc:
                log.info("dropped a peer record from %s: %s", link.peer_id, exc)
                continue
            if record.peer_id == self.peer_id:
                continue
            known = self._records.get(record.peer_id)
            if known is not None and known.seen >= record.seen:
                continue
            self._records[record.peer_id] = record
            self.peer_learned(record.peer_id, record.url, seen=record.seen)
            learned += 1
        if learned:
            self.connmgr.wake()

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
            link = await self.links.dial_url(url)
        else:
            assert peer_id is not None
            link = await self.links.dial(peer_id)
        self.connmgr.release(link.peer_id)
        return link

    def link_views(self) -> list[dict[str, Any]]:
        views = []
        for link in self.links.links():
            local, remote = link.ice_pair()
            sample = self.qos.latest.get(link.link_id)
            views.append(
                {
                    "link_id": link.link_id,
                    "peer_id": link.peer_id,
                    "state": link.state.value,
                    "health": sample.health if sample else "unknown",
                    "rtt_ms": sample.rtt_ms if sample else None,
                    "jitter_ms": sample.jitter_ms if sample else None,
                    "loss_pct": sample.loss_pct if sample else None,
                    "bitrate_kbps": sample.bitrate_kbps if sample else None,
                    "updated_at": sample.at
                    if sample
                    else (link.closed_at or link.opened_at or link.created_at),
                    "direction": link.direction,
                    "setup_ms": link.setup_ms,
                    "reason": link.reason,
                    "ice": {"local": local, "remote": remote},
                }
            )
        return views

    async def close_link(self, peer_id: str) -> bool:
        self.connmgr.hold(peer_id)
        return await self.links.close_link(peer_id)


@contextlib.asynccontextmanager
async def running(config: NodeConfig):
    node = Node(config)
    await node.start()
    try:
        yield node
    finally:
        await node.stop()
