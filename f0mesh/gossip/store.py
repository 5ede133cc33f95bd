"""What the gossip engine needs from the node's database, and an in-memory stand-in for tests.

The engine never writes row by row: it hands the store batches (see writer.WriteBehind), each
committed in one transaction, and acknowledges a message only after its batch is committed.
"""

from __future__ import annotations

import asyncio
from typing import Any, NamedTuple, Protocol

from f0mesh.gossip.audit import AuditRow


class StoredMessage(NamedTuple):
    """A tuple, as AuditRow is: one is built per envelope on both sides."""

    id: str
    origin: str
    seq: int
    topic: str
    payload: Any  # JSON value, or bytes
    hops: int  # as received (0 for the node's own messages)
    hlc: str  # the origin's HLC timestamp, printable
    created_at: float  # the origin's HLC wall time, epoch seconds: the replay window is measured on it
    received_at: float  # epoch seconds, this node's clock
    raw: bytes  # the wire envelope as received, replayed verbatim for repair


class GossipStore(Protocol):
    async def commit(self, messages: list[StoredMessage], audit: list[AuditRow]) -> None:
        """Insert both lists in one transaction. A message id already stored is skipped, not an error:
        after a crash between commit and acknowledgement the same message can legitimately come again."""

    async def missing(self, ids: list[str]) -> list[str]:
        """The given ids that are not stored, in the given order."""

    async def ids_since(self, created_after: float, limit: int) -> list[str]:
        """Ids of messages with created_at > created_after, newest first, at most limit of them."""

    async def get_raw(self, ids: list[str]) -> dict[str, bytes]:
        """Wire envelopes of the stored ones among ids."""

    async def max_seq(self, origin: str) -> int:
        """Highest seq stored for an origin, 0 if none; lets a restarted node resume its own sequence."""


class MemoryGossipStore:
    """GossipStore in memory. It outlives an engine, so a test can restart a node on the same store."""

    def __init__(self) -> None:
        self.messages: dict[str, StoredMessage] = {}
        self.audit: list[AuditRow] = []
        self.commits = 0
        self._lock = asyncio.Lock()

    async def commit(self, messages: list[StoredMessage], audit: list[AuditRow]) -> None:
        async with self._lock:
            for message in messages:
                self.messages.setdefault(message.id, message)
            self.audit.extend(audit)
            self.commits += 1

    async def missing(self, ids: list[str]) -> list[str]:
        return [i for i in ids if i not in self.messages]

    async def ids_since(self, created_after: float, limit: int) -> list[str]:
        recent = [m for m in self.messages.values() if m.created_at > created_after]
        recent.sort(key=lambda m: m.created_at, reverse=True)
        return [m.id for m in recent[:limit]]

    async def get_raw(self, ids: list[str]) -> dict[str, bytes]:
        return {i: self.messages[i].raw for i in ids if i in self.messages}

    async def max_seq(self, origin: str) -> int:
        return max((m.seq for m in self.messages.values() if m.origin == origin), default=0)

    def audit_for(self, message_id: str | None = None, event: str | None = None) -> list[AuditRow]:
        return [
            row
            for row in self.audit
            if (message_id is None or row.message_id == message_id) and (event is None or row.event == event)
        ]
