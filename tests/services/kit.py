"""Fakes for the node's parts in unit tests: links that record what they send, a real store on disk."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from f0mesh import WIRE_VERSION
from f0mesh.gossip import StoredMessage
from f0mesh.rtc.link import LinkState
from f0mesh.store import Store


@dataclass
class FakeLink:
    peer_id: str
    state: LinkState = LinkState.OPEN
    link_id: str = ""
    opened_at: float = field(default_factory=time.time)
    live: bool = True
    sent: list[dict[str, Any]] = field(default_factory=list)
    fail: bool = False
    reason: str | None = None
    direction: str = "outbound"
    closed_at: float | None = None
    path: str | None = None
    signaling: str = "http"
    setup_ms: float | None = None
    browser: bool = False
    remote_version: tuple[int, int] = WIRE_VERSION

    def speaks(self, version: tuple[int, int]) -> bool:
        return self.remote_version >= version

    def describe(self) -> dict[str, Any]:
        return {
            "link_id": self.link_id,
            "peer_id": self.peer_id,
            "direction": self.direction,
            "state": self.state.value,
            "opened_at": self.opened_at,
            "closed_at": self.closed_at,
            "reason": self.reason,
            "ice_local": None,
            "ice_remote": None,
        }

    async def send(self, message: dict[str, Any]) -> None:
        if self.fail:
            raise ConnectionError("link down")
        self.sent.append(message)


class FakeLinks:
    """The part of LinkManager the services use: one link per peer."""

    def __init__(self, *links: FakeLink) -> None:
        self._links = {link.peer_id: link for link in links}
        self.offers: list[Any] = []
        self.replies: list[tuple[str, dict[str, Any]]] = []

    def add(self, link: FakeLink) -> FakeLink:
        self._links[link.peer_id] = link
        return link

    def get(self, peer_id: str) -> FakeLink | None:
        return self._links.get(peer_id)

    def links(self) -> list[FakeLink]:
        return list(self._links.values())

    def open_links(self) -> list[FakeLink]:
        return [link for link in self._links.values() if link.state is LinkState.OPEN]

    async def handle_offer(self, payload: Any) -> dict[str, Any]:
        self.offers.append(payload)
        return {"type": "answer"}

    def mesh_reply(self, peer_id: str, message: dict[str, Any]) -> bool:
        self.replies.append((peer_id, message))
        return False


class FakeGossip:
    def __init__(self) -> None:
        self.published: list[tuple[str, Any]] = []
        self.subscribers: list[Any] = []
        self._news = asyncio.Event()

    def subscribe(self, topic: str | None, callback: Any) -> None:
        self.subscribers.append(callback)

    async def publish(self, topic: str, payload: Any) -> str:
        self.published.append((topic, payload))
        self._news.set()
        return "id"

    async def wait_published(self, count: int, timeout: float = 5.0) -> None:
        async with asyncio.timeout(timeout):
            while len(self.published) < count:
                self._news.clear()
                await self._news.wait()

    def deliver(self, origin: str, topic: str, payload: Any, at: float) -> None:
        message = StoredMessage("m", origin, 1, topic, payload, 1, "", at, at, b"")
        for callback in self.subscribers:
            callback(message)


async def open_store(tmp_path: Path, owner: str) -> Store:
    return await Store.open(f"sqlite:///{tmp_path / 'mesh.db'}", owner)
