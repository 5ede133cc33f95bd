"""Adapters that let independent parts meet without importing each other.

The gossip engine is written against a transport and a store interface; here the link manager
becomes that transport and the SQL store becomes that store; gossip meets the ctl router and the
event bus. Only node.py uses this module.
"""

from __future__ import annotations

import asyncio
import base64
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

from f0mesh.ctl import Handler
from f0mesh.gossip import AuditRow, GossipEngine, LinkClosedError, StoredMessage
from f0mesh.gossip.envelope import Envelope
from f0mesh.gossip.errors import GossipReject
from f0mesh.gossip.transport import MAX_ENVELOPES_PER_MESSAGE
from f0mesh.log_throttle import LogThrottle
from f0mesh.rtc.framing import ChannelClosed
from f0mesh.rtc.link import LinkState
from f0mesh.rtc.link_manager import LinkManager
from f0mesh.store import Store

log = logging.getLogger(__name__)

GOSSIP_FRAME = "gossip"
SUBSCRIBE_PAGE = 100


class LinkGossipTransport:
    """Gossip messages ride the links' ctl channels as ``{"t": "gossip", "m": message}``."""

    def __init__(self, links: LinkManager) -> None:
        self._links = links

    def neighbours(self) -> list[str]:
        return [link.peer_id for link in self._links.open_links()]

    async def send(self, peer_id: str, message: dict[str, Any]) -> None:
        link = self._links.get(peer_id)
        if link is None or link.state is not LinkState.OPEN:
            raise LinkClosedError(f"no open link to {peer_id}")
        try:
            await link.send({"t": GOSSIP_FRAME, "m": message})
        except ChannelClosed as exc:
            raise LinkClosedError(str(exc)) from exc


class SqlGossipStore:
    """The gossip engine's store on the node's tables; one transaction per committed batch."""

    def __init__(self, store: Store) -> None:
        self._store = store

    async def commit(self, messages: list[StoredMessage], audit: list[AuditRow]) -> None:
        # As they are: StoredMessage and AuditRow are tuples in the store's field order (a test
        # checks it), so no dict is built per row.
        await self._store.commit_gossip_values(messages, audit)

    async def missing(self, ids: list[str]) -> list[str]:
        have = await self._store.has_messages(ids)
        return [i for i in ids if i not in have]

    async def ids_since(self, created_after: float, limit: int) -> list[str]:
        return await self._store.message_ids_since(created_after, limit)

    async def get_raw(self, ids: list[str]) -> dict[str, bytes]:
        return await self._store.get_raw_messages(ids)

    async def max_seq(self, origin: str) -> int:
        return await self._store.max_seq(origin)


def gossip_ctl(
    engine: GossipEngine,
    links: LinkManager,
    reserved: frozenset[str],
    refuse: Callable[[str, str, str], None],
) -> Handler:
    """The ``gossip`` ctl handler: ``m`` is the engine's message, which validates the rest.

    A web page's link carries application topics only: an envelope of a ``reserved`` topic (the
    node's own: replicated state, trust, telemetry) arriving from a page, whoever signed it, is
    dropped before the engine sees it and ``refuse(peer_id, reason, detail)`` audits it, so a page
    leaves no state on the mesh. The mesh's own links carry those topics to every node anyway.
    """

    throttle = LogThrottle(log)

    def from_page(peer_id: str, m: dict[str, Any]) -> dict[str, Any]:
        raws = m.get("msgs")
        if m.get("type") != "msgs" or not isinstance(raws, list) or len(raws) > MAX_ENVELOPES_PER_MESSAGE:
            return m  # the engine refuses what is malformed
        kept = []
        for raw in raws:
            try:
                topic = Envelope.decode(raw).topic
            except GossipReject:
                topic = None  # the engine refuses it and says why
            if topic in reserved:
                refuse(peer_id, "reserved_topic", f"a page relayed an envelope of the {topic!r} topic")
            else:
                kept.append(raw)
        return {**m, "msgs": kept}

    async def handle(peer_id: str, message: dict[str, Any]) -> None:
        m = message.get("m")
        if not isinstance(m, dict):
            throttle.info((peer_id, "gossip"), "dropped a gossip ctl message without a map from %s", peer_id)
            return
        link = links.get(peer_id)
        if link is not None and link.browser:
            m = from_page(peer_id, m)
        await engine.on_message(peer_id, m)

    return handle


def message_event(message: StoredMessage) -> dict[str, Any]:
    """A delivered gossip message as the event bus shows it (``/api/events`` topic ``message``)."""
    payload = message.payload
    return {
        "id": message.id,
        "origin": message.origin,
        "topic": message.topic,
        "hops": message.hops,
        **(
            {"payload_b64": base64.b64encode(payload).decode("ascii")}
            if isinstance(payload, bytes)
            else {"payload": payload}
        ),
    }


async def stored_messages(
    store: Store, gossip: GossipEngine, topic: str, since: int | None
) -> AsyncIterator[dict[str, Any]]:
    """Every message of ``topic`` stored from now on (after id ``since`` if given), in storing order,
    as /api/gossip/messages rows. It reads the store, woken by each commit: a slow consumer holds
    one page, never a queue. A topic the node does not carry is joined first (announced to the mesh,
    kept after the iteration ends): ValueError for a bad name, TooManyTopics past the cap."""
    if not gossip.subscriptions.subscribed(topic):
        await gossip.join(topic)
    wake = asyncio.Event()
    unsubscribe = gossip.subscribe(topic, lambda _message: wake.set())
    try:
        last = since if since is not None else await store.last_message_n()
        while True:
            wake.clear()
            rows = await store.list_messages(topic=topic, since=last, limit=SUBSCRIBE_PAGE)
            for row in rows:
                yield row
            if rows:
                last = rows[-1]["n"]
            else:
                await wake.wait()
    finally:
        unsubscribe()
