"""Counters for /metrics, exposed as ``f0mesh_gossip_<name>_total`` (see f0mesh.metrics for why not
libp2p's ``gossipsub_`` names).

Plain integers updated in place (the engine is single-threaded on its event loop); the metrics
module turns samples() into Prometheus text, so this module needs no metrics library. Per-topic
counts are labelled for the first MAX_TOPIC_LABELS topics seen and pooled under OTHER_TOPIC after
that: topics are chosen by whoever publishes, and a label per topic would let any peer grow every
node's metrics without bound.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, fields

MAX_TOPIC_LABELS = 64
OTHER_TOPIC = "_other"

# attribute -> (metric name, help)
METRICS: dict[str, tuple[str, str]] = {
    "recv_unfiltered": ("received_envelopes", "Envelopes received from neighbours, before any check"),
    "recv_bytes": ("received_bytes", "Bytes of the envelopes received from neighbours"),
    "sent": ("sent_envelopes", "Envelopes handed to links, own messages and relayed ones"),
    "sent_bytes": ("sent_bytes", "Bytes of the envelopes handed to links"),
    "acked_sent": ("own_acked", "Own messages a neighbour acknowledged having stored"),
    "acked_forwarded": ("forwarded_acked", "Relayed messages a neighbour acknowledged having stored"),
    "retries": (
        "send_retries",
        "Envelopes re-sent to another neighbour after a failed or unacknowledged send",
    ),
    "ack_timeouts": ("ack_timeouts", "Sends a neighbour did not acknowledge in time"),
    "send_errors": ("send_errors", "Sends that failed because the link had gone"),
    "undelivered": ("push_exhausted", "Messages whose every push attempt failed (repair may still deliver)"),
    "ihave_sent": ("ihave_sent", "IHAVE digests offered to neighbours"),
    "ihave_received": ("ihave_received", "IHAVE digests neighbours offered to this node"),
    "iwant_sent": ("iwant_requested_ids", "Message ids this node asked neighbours for by IWANT"),
    "iwant_received": ("iwant_asked_ids", "Message ids neighbours asked this node for by IWANT"),
    "iwant_served": ("iwant_served_envelopes", "Envelopes sent in answer to IWANT"),
    "memcache_misses": ("iwant_misses", "Message ids asked by IWANT that this node no longer held"),
    "repair_rounds": ("repair_rounds", "Periodic IHAVE repair rounds run"),
    "heartbeats": ("heartbeats", "Gossip heartbeats run (push-peer upkeep and IHAVE of recent ids)"),
    "repaired_forwarded": (
        "repaired_forwarded",
        "Envelopes received in answer to a periodic digest and pushed on like a first receipt",
    ),
    "store_commits": ("store_commits", "Write-behind transactions committed to the store"),
    "store_errors": ("store_errors", "Write-behind transactions that failed (messages not acknowledged)"),
    "not_stored": ("not_stored", "Valid envelopes received that the store did not take (not acknowledged)"),
    "audit_rows_dropped": (
        "audit_rows_dropped",
        "Audit rows of rejections and duplicates shed under overload",
    ),
    "graylisted": ("graylisted_messages", "Messages ignored because their sender's score is below graylist"),
    "offenders": ("offenders_disconnected", "Neighbours disconnected for a score below graylist"),
    "ihave_ignored": ("ihave_ignored", "IHAVE ignored: sender below gossip threshold or over its budget"),
    "broken_promises": ("broken_promises", "IWANTed ids a neighbour advertised and never delivered"),
    "idontwant_sent": ("idontwant_sent", "IDONTWANT announcements sent for large envelopes"),
    "idontwant_skipped": ("idontwant_skipped", "Pushes skipped because the neighbour said IDONTWANT"),
    "validation_ignored": ("validation_ignored", "Messages a topic validator ignored (or timed out on)"),
    "publish_overloaded": (
        "publish_overloaded",
        "Own publishes refused with HTTP 429 because max_pending_publishes were waiting for the store",
    ),
}
# per-topic counters: attribute -> (metric name, help)
TOPIC_METRICS: dict[str, tuple[str, str]] = {
    "published": ("topic_messages_published", "Messages this node signed and published, by topic"),
    "delivered": ("topic_messages_delivered", "Valid first copies received from neighbours, by topic"),
    "duplicates": ("topic_messages_duplicate", "Further copies of messages already seen, by topic"),
}
SENT_BY_TYPE = (
    "transport_sent_messages",
    "Messages handed to links, by type (msgs, ack, ihave, iwant, control): each costs a frame at least",
)
REJECTED = ("rejected_envelopes", "Envelopes refused, by reason (bad signature, replay, rate limit, size...)")


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
    not_stored: int = 0
    audit_rows_dropped: int = 0
    publish_overloaded: int = 0
    graylisted: int = 0
    offenders: int = 0
    ihave_ignored: int = 0
    broken_promises: int = 0
    idontwant_sent: int = 0
    idontwant_skipped: int = 0
    validation_ignored: int = 0
    rejected: Counter[str] = field(default_factory=Counter)  # by Reason value, or engine.BLOCKED
    sent_by_type: Counter[str] = field(default_factory=Counter)  # transport.CountingTransport's
    by_topic: Counter[tuple[str, str]] = field(default_factory=Counter)  # (attribute, topic label)
    labelled_topics: set[str] = field(default_factory=set)

    def count(self, attribute: str, topic: str, n: int = 1) -> None:
        """``n`` more messages of ``topic`` in a per-topic counter (and in its plain total)."""
        setattr(self, attribute, getattr(self, attribute) + n)
        if topic not in self.labelled_topics:
            if len(self.labelled_topics) >= MAX_TOPIC_LABELS:
                topic = OTHER_TOPIC
            else:
                self.labelled_topics.add(topic)
        self.by_topic[attribute, topic] += n

    def samples(self) -> list[tuple[str, str, dict[str, str], int]]:
        """(metric name, help, labels, value) for every counter."""
        out = [(*METRICS[f.name], {}, getattr(self, f.name)) for f in fields(self) if f.name in METRICS]
        out.extend((*TOPIC_METRICS[a], {"topic": t}, n) for (a, t), n in sorted(self.by_topic.items()))
        out.extend((*REJECTED, {"reason": reason}, n) for reason, n in sorted(self.rejected.items()))
        out.extend((*SENT_BY_TYPE, {"type": kind}, n) for kind, n in sorted(self.sent_by_type.items()))
        return out
