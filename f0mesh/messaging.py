"""Direct messages and queries as a node runs them (f0mesh/direct.py, f0mesh/query.py).

Direct frames go only on links whose peer speaks wire 1.1 (a 1.0 node would hold an unknown kind
against us); a peer's key and tags come from its verified record, kept in the peer book; the
telemetry of neighbours says which of them holds a link to an addressee; a message read here is a
``direct`` event (the admin token's streams only, see events.PRIVATE_TOPICS).
"""

from __future__ import annotations

import base64
from collections.abc import Awaitable, Callable
from typing import Any

import msgpack

from f0mesh.config import NodeConfig
from f0mesh.direct import DirectDropped, DirectService, Received
from f0mesh.errors import F0MeshError
from f0mesh.events import EventBus
from f0mesh.identity import Identity
from f0mesh.peer_book import PeerBook
from f0mesh.query import Queries
from f0mesh.rtc.link_manager import LinkManager
from f0mesh.tasks import TaskSet
from f0mesh.wire import V1_1

MAX_TELEMETRY_LINKS = 256  # entries of a neighbour's summary looked at for a route


class Messaging:
    def __init__(
        self,
        identity: Identity,
        config: NodeConfig,
        book: PeerBook,
        links: LinkManager,
        events: EventBus,
        tasks: TaskSet,
        *,
        telemetry: dict[str, dict[str, Any]],
        send: Callable[[str, dict[str, Any]], Awaitable[None]],
        refuse: Callable[[str, str, str], None],
        violated: Callable[[str, str], None],
    ) -> None:
        """``telemetry``: each origin's last summary; ``refuse(peer, reason, detail)`` writes a dropped
        frame's audit row, ``violated(peer, what)`` charges a malformed one to its neighbour."""
        self.peer_id = identity.peer_id
        self.tags = config.tags
        self._book, self._links, self._events, self._telemetry = book, links, events, telemetry
        self._refuse, self._violated = refuse, violated
        self.direct = DirectService(
            identity,
            neighbours=self._neighbours,
            send=send,
            key_of=book.x25519,
            dropped=self._dropped,
            toward=self._linked_to,
            blocked=book.blocked,
        )
        self.direct.handler("msg", self._delivered)
        self.queries = Queries(self.direct, self_info=self._ping_answer, tasks=tasks)

    def _ping_answer(self) -> dict[str, Any]:
        return {"peer_id": self.peer_id, "tags": self.tags}

    def _neighbours(self) -> list[str]:
        """Open links whose peer reads direct frames (never a page: it does not relay)."""
        return [
            lk.peer_id
            for lk in self._links.open_links()
            if lk.speaks(V1_1) and not lk.browser and not self._book.blocked(lk.peer_id)
        ]

    def _linked_to(self, peer_id: str) -> list[str]:
        """Neighbours whose own telemetry lists a link to ``peer_id``: a direct frame's way there."""
        found = []
        for link in self._links.open_links():
            links = self._telemetry.get(link.peer_id, {}).get("links")
            if isinstance(links, list) and any(
                isinstance(lk, dict) and lk.get("peer_id") == peer_id for lk in links[:MAX_TELEMETRY_LINKS]
            ):
                found.append(link.peer_id)
        return found

    def _dropped(self, neighbour: str, reason: str, detail: str) -> None:
        self._refuse(neighbour, reason, detail)
        if reason in ("direct_malformed", "direct_too_large"):
            self._violated(neighbour, "direct")

    def _delivered(self, received: Received) -> None:
        try:
            payload = msgpack.unpackb(received.body, raw=False)
        except Exception as exc:  # signed by its sender, but not a value: the sender's bug
            raise DirectDropped("direct message body is not msgpack", code="direct_malformed") from exc
        value = (
            {"payload_b64": base64.b64encode(payload).decode("ascii")}
            if isinstance(payload, bytes)
            else {"payload": payload}
        )
        event = {"id": received.frame_id.hex(), "from": received.sender, "sent_at": received.sent_at}
        self._events.publish("direct", {**event, **value})

    async def send(self, peer_id: str, payload: Any) -> str:
        """Send ``payload`` (JSON-like or bytes) to one peer, sealed to its key; the message id."""
        try:
            body = msgpack.packb(payload, use_bin_type=True)
        except (TypeError, ValueError, OverflowError) as exc:  # OverflowError: an int past 64 bits
            raise F0MeshError(f"payload is not JSON-like or bytes: {exc}", code="bad_payload") from exc
        return await self.direct.send(peer_id, "msg", body)

    def targets(self, peers: list[str] | None, tags: dict[str, str] | None) -> list[str]:
        """Known peers (this node too) that are in ``peers`` if given and carry every tag in ``tags``."""
        known = {self.peer_id: self.tags} | self._book.addressable()
        chosen = list(dict.fromkeys(peers)) if peers is not None else list(known)
        wanted = (tags or {}).items()
        return [p for p in chosen if all(known.get(p, {}).get(k) == v for k, v in wanted)]

    async def query(
        self,
        name: str,
        payload: Any,
        *,
        peers: list[str] | None = None,
        tags: dict[str, str] | None = None,
        timeout: float = 5.0,
    ) -> dict[str, Any]:
        targets = self.targets(peers, tags)
        return {"targets": targets, **await self.queries.ask(name, payload, targets, timeout)}
