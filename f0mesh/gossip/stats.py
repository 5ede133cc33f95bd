"""Counters for /metrics; names follow the rust-libp2p gossipsub exporter where it has one.

Plain integers updated in place (the engine is single-threaded on its event loop); the API layer
turns samples() into Prometheus text, so this module needs no metrics library.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, fields

# attribute -> (metric name, help)
METRICS: dict[str, tuple[str, str]] = {
    "published": ("topic_msg_published", "messages published by this node"),
    "recv_unfiltered": ("topic_msg_recv_counts_unfiltered", "envelopes received, before any check"),
    "recv_bytes": ("topic_msg_recv_bytes", "bytes of envelopes received"),
    "delivered": ("topic_msg_recv_counts", "valid first copies stored and delivered"),
    "duplicates": ("topic_msg_recv_duplicates", "further copies of messages already seen"),
    "sent": ("topic_msg_sent_counts", "envelopes handed to the transport"),
    "sent_bytes": ("topic_msg_sent_bytes", "bytes of envelopes handed to the transport"),
    "acked_sent": ("gossip_sent_acked", "own messages acknowledged by a neighbour"),
    "acked_forwarded": ("gossip_forwarded_acked", "relayed messages acknowledged by a neighbour"),
    "retries": ("gossip_send_retries", "envelopes re-sent to another neighbour after a failed send"),
    "ack_timeouts": ("gossip_ack_timeouts", "sends not acknowledged in time"),
    "send_errors": ("gossip_send_errors", "transport sends that raised (link gone)"),
    "undelivered": ("gossip_push_exhausted", "messages whose every push attempt failed"),
    "ihave_sent": ("gossip_ihave_sent", "IHAVE digests sent"),
    "ihave_received": ("gossip_ihave_received", "IHAVE digests received"),
    "iwant_sent": ("topic_iwant_msgs", "message ids requested by IWANT"),
    "iwant_received": ("gossip_iwant_received", "message ids asked of this node by IWANT"),
    "iwant_served": ("gossip_iwant_served", "envelopes sent in answer to IWANT"),
    "memcache_misses": ("memcache_misses", "IWANT ids this node could not serve"),
    "repair_rounds": ("gossip_repair_rounds", "periodic repair rounds run"),
    "heartbeats": ("gossip_heartbeats", "heartbeats run (mesh upkeep and IHAVE of recent ids)"),
    "repaired_forwarded": (
        "gossip_repaired_forwarded",
        "envelopes received in answer to a periodic digest and pushed on like a first receipt",
    ),
    "store_commits": ("gossip_store_commits", "write-behind transactions committed"),
    "store_errors": ("gossip_store_errors", "write-behind transactions that failed"),
    "audit_rows_dropped": ("gossip_audit_rows_dropped", "audit rows of rejections shed under overload"),
    "publish_overloaded": (
        "gossip_publish_overloaded",
        "own publishes refused (HTTP 429) because max_pending_publishes were waiting for the store",
    ),
}


@dataclass
class GossipStats:
    published: int = 0
    recv_unfiltered: int = 0
    recv_bytes: int = 0
    delivered: int = 0
    duplicates: int = 0
    sent: int = 0
    sent_bytes: int = 0
    acked_sent: int = 0
    acked_forwarded: int = 0
    retries: int = 0
    ack_timeouts: int = 0
    send_errors: int = 0
    undelivered: int = 0
    ihave_sent: int = 0
    ihave_received: int = 0
    iwant_sent: int = 0
    iwant_received: int = 0
    iwant_served: int = 0
    memcache_misses: int = 0
    repair_rounds: int = 0
    heartbeats: int = 0
    repaired_forwarded: int = 0
    store_commits: int = 0
    store_errors: int = 0
    audit_rows_dropped: int = 0
    publish_overloaded: int = 0
    rejected: Counter[str] = field(default_factory=Counter)  # by Reason value, or engine.BLOCKED

    def samples(self) -> list[tuple[str, dict[str, str], int]]:
        """(metric name, labels, value) for every counter, rejections labelled by reason."""
        out = [(METRICS[f.name][0], {}, getattr(self, f.name)) for f in fields(self) if f.name in METRICS]
        out.extend(("invalid_messages", {"reason": reason}, n) for reason, n in sorted(self.rejected.items()))
        return out
