"""Signed, trust-weighted gossip: envelopes, validation pipeline, push with ack/retry, repair, audit."""

from f0mesh.gossip.audit import AuditEvent, AuditRow, GossipTracer
from f0mesh.gossip.engine import GossipEngine
from f0mesh.gossip.envelope import Envelope, message_id
from f0mesh.gossip.errors import GossipReject, Reason
from f0mesh.gossip.params import GossipParams
from f0mesh.gossip.seen_cache import SeenCache
from f0mesh.gossip.stats import GossipStats
from f0mesh.gossip.store import GossipStore, MemoryGossipStore, StoredMessage
from f0mesh.gossip.transport import (
    GossipEndpoint,
    GossipTransport,
    LinkClosedError,
    MemoryNetwork,
    MemoryTransport,
    MessageType,
)

__all__ = [
    "AuditEvent",
    "AuditRow",
    "Envelope",
    "GossipEndpoint",
    "GossipEngine",
    "GossipParams",
    "GossipReject",
    "GossipStats",
    "GossipStore",
    "GossipTracer",
    "GossipTransport",
    "LinkClosedError",
    "MemoryGossipStore",
    "MemoryNetwork",
    "MemoryTransport",
    "MessageType",
    "Reason",
    "SeenCache",
    "StoredMessage",
    "message_id",
]
