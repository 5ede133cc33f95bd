"""The peer book: what this node knows of every peer (``mesh_peers``), held in memory, written behind.

One record per peer: URL, last seen, blocked, pinned (added by the operator), linked (a link to it
opened once), private (its URL is never dialled; its relays are the way in), its registry status,
and what its verified map record says for direct messages and queries (tags, X25519 key).
Peer exchange and the registry learn peers in bursts and re-report every peer each round, so writes
are coalesced: one transaction per burst, and ``last_seen`` only when it moved by
``PEER_SEEN_RESOLUTION_S`` (it is for operators: "seen a minute ago").
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from typing import Any

from f0mesh.membership import Membership
from f0mesh.state import PeerInfo
from f0mesh.store import Store
from f0mesh.tasks import TaskSet

PEER_FLUSH_S = 1.0
PEER_SEEN_RESOLUTION_S = 30.0


class PeerBook:
    def __init__(
        self,
        own_id: str,
        store: Store,
        tasks: TaskSet,
        membership: Membership | None = None,
        *,
        kept: Callable[[str], bool],
    ) -> None:
        """``kept(peer_id)``: whether another part (peer store, trust, registry) holds the peer, so a
        stranger collection or an eviction from the peer store leaves its record alone; ``membership``
        hears of a known peer whose record now carries other tags."""
        self.own_id = own_id
        self._membership = membership
        self._store = store
        self._tasks = tasks
        self._kept_elsewhere = kept
        self._peers: dict[str, dict[str, Any]] = {}
        self._dirty: set[str] = set()
        self._written: dict[str, tuple[str | None, float]] = {}
        self._forgotten: set[str] = set()  # collected; their mesh_peers rows still to delete
        self._flush_due: asyncio.TimerHandle | None = None
        self._running = False

    async def load(self) -> None:
        for row in await self._store.list_peers(limit=10000):
            self._peers[row["peer_id"]] = row
        self._running = True

    def __contains__(self, peer_id: object) -> bool:
        return peer_id in self._peers

    def learned(self, peer_id: str, url: str | None, *, seen: float | None = None) -> None:
        self._forgotten.discard(peer_id)
        record = self._peers.setdefault(peer_id, {"peer_id": peer_id, "url": None, "blocked": False})
        if url:
            record["url"] = url
        record["last_seen"] = max(record.get("last_seen") or 0.0, seen or time.time())
        url_written, seen_written = self._written.get(peer_id, (None, -math.inf))
        if url_written == record["url"] and record["last_seen"] - seen_written < PEER_SEEN_RESOLUTION_S:
            return
        self._dirty.add(peer_id)
        if self._flush_due is None and self._running:
            self._flush_due = asyncio.get_running_loop().call_later(PEER_FLUSH_S, self._flush_soon)

    def mark(self, peer_id: str, **fields: Any) -> None:
        """Facts kept in memory only: linked, pinned, status, private, relays."""
        self._peers[peer_id].update(fields)

    def mark_private(self, peer_id: str, private: bool, relays: tuple[str, ...]) -> None:
        """A private peer's URL is kept for operators but never dialled: its relays are the way in."""
        self.mark(peer_id, private=private, relays=relays)

    def from_registry(self, info: PeerInfo) -> None:
        """mesh_peers mirrors the replicated registry; a peer that left cleanly is not dialled."""
        self.learned(info.peer_id, info.url, seen=info.last_seen)
        self.mark(info.peer_id, status=info.status, private=info.private, relays=info.relays)
        self.note_keys(info.peer_id, info.tags, info.x25519, info.topics)

    def note_keys(
        self, peer_id: str, tags: dict[str, str], x25519: bytes | None, topics: tuple[str, ...] = ()
    ) -> None:
        """What a verified record says for direct messages and query filters, and its topics."""
        record = self._peers.get(peer_id)
        if record is None:
            return
        record["topics"] = list(topics)
        if record.get("tags", {}) != tags:
            if "tags" in record and self._membership is not None:
                self._membership.tags_changed(peer_id, tags)
            record["tags"] = dict(tags)
        if x25519 is not None:
            record["x25519"] = x25519

    def tags(self, peer_id: str) -> dict[str, str]:
        return dict(self._peers.get(peer_id, {}).get("tags") or {})

    def topics(self, peer_id: str) -> list[str]:
        """The topics its latest verified record names (empty: every topic, or a record without them)."""
        return list(self._peers.get(peer_id, {}).get("topics") or ())

    def x25519(self, peer_id: str) -> bytes | None:
        """The key direct messages to the peer are sealed to, from its verified record."""
        return self._peers.get(peer_id, {}).get("x25519")

    def addressable(self) -> dict[str, dict[str, str]]:
        """Peers a direct message or a query can reach (a key known, not left or gone), with tags."""
        return {
            pid: rec.get("tags") or {}
            for pid, rec in self._peers.items()
            if rec.get("x25519") is not None and rec.get("status") not in ("left", "gone")
        }

    def url(self, peer_id: str) -> str | None:
        """The URL to dial or forward to: None for an unknown or a private peer."""
        record = self._peers.get(peer_id)
        return record.get("url") if record and not record.get("private") else None

    def relays(self, peer_id: str) -> set[str]:
        return set(self._peers.get(peer_id, {}).get("relays") or ())

    def blocked(self, peer_id: str) -> bool:
        record = self._peers.get(peer_id)
        return bool(record and record.get("blocked"))

    async def set_blocked(self, peer_id: str, blocked: bool) -> None:
        record = self._peers.setdefault(peer_id, {"peer_id": peer_id, "url": None})
        record["blocked"] = blocked
        await self._store.set_peer_blocked(peer_id, blocked)

    def dial_candidates(self) -> dict[str, str]:
        return {
            pid: rec["url"]
            for pid, rec in self._peers.items()
            if rec.get("url")
            and not rec.get("blocked")
            and not rec.get("private")
            and rec.get("status") != "left"
            and pid != self.own_id
        }

    def strangers(self, horizon: float, live: Callable[[str], bool]) -> list[str]:
        """Peers this node holds nothing for, not heard of since ``horizon`` and not being dialled."""
        return [
            pid
            for pid, rec in self._peers.items()
            if (rec.get("last_seen") or 0.0) < horizon and not self._kept(pid, rec) and not live(pid)
        ]

    def _kept(self, peer_id: str, record: dict[str, Any]) -> bool:
        """Linked once, kept by the operator, or by another part of the node."""
        if record.get("linked") or record.get("blocked") or record.get("pinned"):
            return True
        return self._kept_elsewhere(peer_id)

    def forget(self, peer_id: str) -> None:
        self._peers.pop(peer_id, None)
        self._written.pop(peer_id, None)
        self._dirty.discard(peer_id)
        self._forgotten.add(peer_id)

    def evicted(self, peer_id: str) -> None:
        """The peer store made room: a peer known only from that record goes with it."""
        record = self._peers.get(peer_id)
        if record is not None and not self._kept(peer_id, record):
            self.forget(peer_id)

    def _flush_soon(self) -> None:
        self._flush_due = None
        self._tasks.spawn(self.flush(), name="peer-book-flush")

    async def flush(self) -> None:
        """One transaction for a burst of learning: deletions of collected peers, then the new rows."""
        forgotten, self._forgotten = self._forgotten, set()
        if forgotten:
            await self._store.delete_peers(sorted(forgotten))
        dirty, self._dirty = self._dirty, set()
        rows = [
            {"peer_id": pid, "url": rec.get("url"), "last_seen": rec.get("last_seen")}
            for pid in dirty
            if (rec := self._peers.get(pid)) is not None
        ]
        if rows:
            await self._store.upsert_peers(rows)
            self._written.update((r["peer_id"], (r["url"], r["last_seen"])) for r in rows)

    async def close(self) -> None:
        """The last burst is written; nothing is scheduled after this."""
        self._running = False
        if self._flush_due is not None:
            self._flush_due.cancel()
            self._flush_due = None
        await self.flush()


def held_elsewhere(peer_id: str, *, parts: Callable[[], tuple[Any, Any, Any]]) -> bool:
    """Whether the peer store, the trust layer or the registry holds a peer the book would collect;
    ``parts()`` gives them (records, trust, state) when asked, since the book is built before them."""
    records, trust, state = parts()
    held = (records, trust.opinions, trust.cache.pretrusted)
    return any(peer_id in where for where in held) or state.registered(peer_id)
