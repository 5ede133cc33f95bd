"""Audit trail of gossip decisions, and the tracer hook that sees each one as it is made.

Every decision the pipeline takes about a message becomes one AuditRow; rows are committed with
the message they concern (see store.GossipStore), so the trail never claims a delivery that a
crash lost. The tracer is the live view (logs, SSE), like go-libp2p-pubsub's RawTracer.
"""

from __future__ import annotations

from enum import StrEnum
from typing import NamedTuple, Protocol


class AuditEvent(StrEnum):
    PUBLISHED = "published"  # this node originated the message
    SENT = "sent"  # a neighbour acknowledged a message this node originated
    RECEIVED = "received"  # first valid copy, stored and delivered
    FORWARDED = "forwarded"  # a neighbour acknowledged a message this node relayed
    DUPLICATE = "duplicate"  # a further copy, dropped
    REJECTED = "rejected"  # refused; reason says why


class AuditRow(NamedTuple):
    """A tuple rather than a frozen dataclass: one is built per envelope, and a frozen dataclass's
    ``__init__`` (an ``object.__setattr__`` per field) cost several times as much."""

    at: float  # epoch seconds
    event: AuditEvent
    message_id: str | None  # None when the envelope was too broken to have an id
    peer_id: str | None  # the neighbour concerned (or the origin, for "published")
    reason: str | None = None  # set for "rejected": a gossip.errors.Reason value


class GossipTracer(Protocol):
    def trace(self, row: AuditRow) -> None:
        """Called synchronously for every decision, before the row is committed; must not block."""
