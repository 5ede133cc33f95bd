"""Schema migrations, applied in order at start-up.

Each step is a function of a sync connection, so the same step runs on both backends. Append
new steps; never edit one that has shipped, since databases in the field already ran it.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import sqlalchemy as sa

from f0mesh.store.schema import gossip_sequence, metadata, schema_version


def _v1_initial(conn: sa.Connection) -> None:
    metadata.create_all(conn, checkfirst=True)


def _v2_gossip_created_at(conn: sa.Connection) -> None:
    """The origin's creation time of each message: the replay window and repair are measured on it."""
    columns = {c["name"] for c in sa.inspect(conn).get_columns("gossip_messages")}
    if "created_at" not in columns:
        conn.execute(sa.text("ALTER TABLE gossip_messages ADD COLUMN created_at FLOAT"))
        conn.execute(sa.text("UPDATE gossip_messages SET created_at = received_at"))
    indexes = {i["name"] for i in sa.inspect(conn).get_indexes("gossip_messages")}
    if "ix_gossip_created" not in indexes:
        conn.execute(sa.text("CREATE INDEX ix_gossip_created ON gossip_messages (owner, created_at)"))


def _v3_samples_probes_answered(conn: sa.Connection) -> None:
    """Probes answered per window, so loss can be recomputed exactly from the stored samples."""
    columns = {c["name"] for c in sa.inspect(conn).get_columns("link_samples")}
    if "probes_answered" not in columns:
        conn.execute(sa.text("ALTER TABLE link_samples ADD COLUMN probes_answered INTEGER"))


def _v4_gossip_order_and_bytes(conn: sa.Connection) -> None:
    """A per-owner storing order (n) for resumable streams and paging, and bytes payloads."""
    columns = {c["name"] for c in sa.inspect(conn).get_columns("gossip_messages")}
    if "n" not in columns:
        conn.execute(sa.text("ALTER TABLE gossip_messages ADD COLUMN n BIGINT"))
    if "payload_bin" not in columns:
        blob = "BYTEA" if conn.dialect.name == "postgresql" else "BLOB"
        conn.execute(sa.text(f"ALTER TABLE gossip_messages ADD COLUMN payload_bin {blob}"))
    indexes = {i["name"] for i in sa.inspect(conn).get_indexes("gossip_messages")}
    if "ix_gossip_n" not in indexes:
        conn.execute(sa.text("CREATE INDEX ix_gossip_n ON gossip_messages (owner, n)"))
    gossip_sequence.create(conn, checkfirst=True)
    # rows stored before this version are numbered in the order they were received
    conn.execute(
        sa.text(
            "UPDATE gossip_messages SET n = ranked.rn FROM ("
            " SELECT owner AS o, id AS i,"
            " ROW_NUMBER() OVER (PARTITION BY owner ORDER BY received_at, id) AS rn"
            " FROM gossip_messages) AS ranked"
            " WHERE gossip_messages.owner = ranked.o AND gossip_messages.id = ranked.i"
            " AND gossip_messages.n IS NULL"
        )
    )
    conn.execute(
        sa.text(
            "INSERT INTO gossip_sequence (owner, last_n)"
            " SELECT owner, MAX(n) FROM gossip_messages GROUP BY owner"
            " ON CONFLICT (owner) DO NOTHING"
        )
    )


MIGRATIONS: list[Callable[[sa.Connection], None]] = [
    _v1_initial,
    _v2_gossip_created_at,
    _v3_samples_probes_answered,
    _v4_gossip_order_and_bytes,
]
LATEST = len(MIGRATIONS)


def current_version(conn: sa.Connection) -> int:
    if not sa.inspect(conn).has_table(schema_version.name):
        return 0
    return conn.execute(sa.select(sa.func.max(schema_version.c.version))).scalar() or 0


def migrate(conn: sa.Connection) -> int:
    """Bring the schema to LATEST; returns the version found before. Runs in one transaction."""
    if conn.dialect.name == "postgresql":
        # Several nodes of a fleet may start against one database at the same moment.
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(8700001)"))
    found = current_version(conn)
    if found > LATEST:
        raise RuntimeError(f"database schema version {found} is newer than this f0mesh ({LATEST})")
    for version in range(found + 1, LATEST + 1):
        MIGRATIONS[version - 1](conn)
        conn.execute(sa.insert(schema_version).values(id=version, version=version, applied_at=time.time()))
    return found
