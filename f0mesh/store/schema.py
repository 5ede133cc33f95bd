"""Table definitions. Every row carries ``owner``, the PeerId of the node that wrote it, so a
fleet of nodes can share one PostgreSQL database with their rows kept apart."""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

schema_version = sa.Table(
    "f0mesh_schema",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("applied_at", sa.Float, nullable=False),
)

mesh_peers = sa.Table(
    "mesh_peers",
    metadata,
    sa.Column("owner", sa.String(64), primary_key=True),
    sa.Column("peer_id", sa.String(64), primary_key=True),
    sa.Column("url", sa.Text, nullable=True),
    sa.Column("trust", sa.Float, nullable=True),
    sa.Column("first_seen", sa.Float, nullable=False),
    sa.Column("last_seen", sa.Float, nullable=True),
    sa.Column("blocked", sa.Boolean, nullable=False, default=False),
    sa.Column("location", sa.String(64), nullable=True),
)

mesh_links = sa.Table(
    "mesh_links",
    metadata,
    sa.Column("owner", sa.String(64), primary_key=True),
    sa.Column("link_id", sa.String(64), primary_key=True),
    sa.Column("peer_id", sa.String(64), nullable=False),
    sa.Column("direction", sa.String(16), nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("health", sa.String(16), nullable=False, default="unknown"),
    sa.Column("rtt_ms", sa.Float, nullable=True),
    sa.Column("jitter_ms", sa.Float, nullable=True),
    sa.Column("loss_pct", sa.Float, nullable=True),
    sa.Column("bitrate_kbps", sa.Float, nullable=True),
    sa.Column("ice_local", sa.Text, nullable=True),
    sa.Column("ice_remote", sa.Text, nullable=True),
    sa.Column("opened_at", sa.Float, nullable=True),
    sa.Column("closed_at", sa.Float, nullable=True),
    sa.Column("reason", sa.Text, nullable=True),
    sa.Column("updated_at", sa.Float, nullable=False),
    sa.Index("ix_mesh_links_peer", "owner", "peer_id", "updated_at"),
)

link_samples = sa.Table(
    "link_samples",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("owner", sa.String(64), nullable=False),
    sa.Column("link_id", sa.String(64), nullable=False),
    sa.Column("peer_id", sa.String(64), nullable=False),
    sa.Column("at", sa.Float, nullable=False),
    sa.Column("health", sa.String(16), nullable=False),
    sa.Column("rtt_ms", sa.Float, nullable=True),
    sa.Column("rtt_p95_ms", sa.Float, nullable=True),
    sa.Column("jitter_ms", sa.Float, nullable=True),
    sa.Column("loss_pct", sa.Float, nullable=True),
    sa.Column("bitrate_kbps", sa.Float, nullable=True),
    sa.Column("tx_kbps", sa.Float, nullable=True),
    sa.Column("rx_kbps", sa.Float, nullable=True),
    sa.Column("probes_sent", sa.Integer, nullable=True),
    sa.Column("probes_lost", sa.Integer, nullable=True),
    sa.Column("probes_answered", sa.Integer, nullable=True),
    sa.Index("ix_link_samples_link", "owner", "link_id", "at"),
    sa.Index("ix_link_samples_at", "owner", "at"),
)

mesh_gossip_audit = sa.Table(
    "mesh_gossip_audit",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("owner", sa.String(64), nullable=False),
    sa.Column("at", sa.Float, nullable=False),
    sa.Column("event", sa.String(16), nullable=False),
    sa.Column("message_id", sa.String(80), nullable=True),
    sa.Column("peer_id", sa.String(64), nullable=True),
    sa.Column("reason", sa.Text, nullable=True),
    sa.Index("ix_audit_at", "owner", "at"),
)

gossip_messages = sa.Table(
    "gossip_messages",
    metadata,
    sa.Column("owner", sa.String(64), primary_key=True),
    sa.Column("id", sa.String(80), primary_key=True),
    sa.Column("origin", sa.String(64), nullable=False),
    sa.Column("seq", sa.BigInteger, nullable=False),
    sa.Column("topic", sa.String(128), nullable=False),
    sa.Column("payload", sa.Text, nullable=False),
    sa.Column("hops", sa.Integer, nullable=False),
    sa.Column("hlc", sa.String(80), nullable=False),
    sa.Column("received_at", sa.Float, nullable=False),
    sa.Column("raw", sa.LargeBinary, nullable=False),
    sa.Column("created_at", sa.Float, nullable=True),
    # the node's own order of storing: SSE ids and paging cursors (see gossip_sequence)
    sa.Column("n", sa.BigInteger, nullable=True),
    # a bytes payload (then payload is "null"); JSON payloads stay in payload
    sa.Column("payload_bin", sa.LargeBinary, nullable=True),
    sa.Index("ix_gossip_topic", "owner", "topic", "received_at"),
    sa.Index("ix_gossip_created", "owner", "created_at"),
    sa.Index("ix_gossip_received", "owner", "received_at"),
    sa.Index("ix_gossip_n", "owner", "n"),
)

# The newest n of an owner, saved by each prune: the rows it deletes may hold it, and n starting
# again would make a client resuming with an old cursor miss the new messages.
gossip_sequence = sa.Table(
    "gossip_sequence",
    metadata,
    sa.Column("owner", sa.String(64), primary_key=True),
    sa.Column("last_n", sa.BigInteger, nullable=False),
)

crdt_state = sa.Table(
    "crdt_state",
    metadata,
    sa.Column("owner", sa.String(64), primary_key=True),
    sa.Column("name", sa.String(128), primary_key=True),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("data", sa.LargeBinary, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
)
