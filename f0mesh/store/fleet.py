"""Fleet queries: SQL an operator runs on the PostgreSQL database that a fleet of nodes shares.

Every row carries ``owner``, the PeerId of the node that wrote it, so one query sees every node's
links at once and still says whose view each row is. The SQL lives here only: the operator's guide
(docs/operations.md) quotes it verbatim, a test checks the quote and runs the query on PostgreSQL
after real nodes wrote their rows, so the guide cannot drift from the schema.

``:name`` placeholders are SQLAlchemy bind parameters and psql variables alike, so the text runs
unchanged in both: ``python -m f0mesh.store.fleet lossy-links | psql "$DB" -v min_loss_pct=5``.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import sqlalchemy as sa

from f0mesh.store.url import to_engine_url

# Every open link in the fleet whose loss over its latest QoS window is above the threshold.
# A link between two nodes of the fleet appears once per side: each owner measures its own view.
LOSSY_LINKS_SQL = """\
SELECT owner, peer_id, link_id, loss_pct, rtt_ms, jitter_ms, health, updated_at
FROM mesh_links
WHERE state = 'open' AND loss_pct > :min_loss_pct
ORDER BY loss_pct DESC, owner, peer_id"""

# The same over a time window of samples: links whose average loss since :since (Unix time) is
# above the threshold, closed or not. Steadier than the latest window for alerting.
LOSSY_LINKS_SINCE_SQL = """\
SELECT owner, peer_id, link_id, avg(loss_pct) AS avg_loss_pct, count(*) AS samples, max(at) AS last_at
FROM link_samples
WHERE at >= :since AND loss_pct IS NOT NULL
GROUP BY owner, peer_id, link_id
HAVING avg(loss_pct) > :min_loss_pct
ORDER BY avg_loss_pct DESC, owner, peer_id"""

QUERIES = {"lossy-links": LOSSY_LINKS_SQL, "lossy-links-since": LOSSY_LINKS_SINCE_SQL}


def query(store_url: str, sql: str, **params: Any) -> list[dict[str, Any]]:
    """Run one fleet query on a store URL (``postgresql://...`` or ``sqlite:///...``)."""
    engine = sa.create_engine(to_engine_url(store_url))
    try:
        with engine.connect() as conn:
            return [dict(row) for row in conn.execute(sa.text(sql), params).mappings()]
    finally:
        engine.dispose()


async def run_query(store_url: str, sql: str, **params: Any) -> list[dict[str, Any]]:
    """``query`` off the event loop."""
    return await asyncio.to_thread(query, store_url, sql, **params)


async def lossy_links(store_url: str, min_loss_pct: float = 5.0) -> list[dict[str, Any]]:
    return await run_query(store_url, LOSSY_LINKS_SQL, min_loss_pct=min_loss_pct)


async def lossy_links_since(store_url: str, since: float, min_loss_pct: float = 5.0) -> list[dict[str, Any]]:
    return await run_query(store_url, LOSSY_LINKS_SINCE_SQL, since=since, min_loss_pct=min_loss_pct)


def main(argv: list[str]) -> int:
    names = argv or list(QUERIES)
    unknown = [n for n in names if n not in QUERIES]
    if unknown:
        print(f"unknown query {unknown[0]!r}; known: {', '.join(QUERIES)}", file=sys.stderr)
        return 2
    print("\n\n".join(QUERIES[n] + ";" for n in names))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
