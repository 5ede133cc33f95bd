"""The fleet query of the operator's guide, run on a PostgreSQL database that real nodes write to.

tests/store/test_node_on_postgresql.py shows two nodes keep their rows apart in one database; this
test runs the guide's "links with loss over 5 %" SQL (f0mesh.store.fleet) across those owners. Loopback
links lose nothing, so a third owner's rows, written through the Store as a node elsewhere in the
fleet would write them, supply the lossy link; the expected answer is computed independently.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from pathlib import Path

import sqlalchemy as sa

from f0mesh.identity import Identity
from f0mesh.store import Store
from f0mesh.store.fleet import (
    LOSSY_LINKS_SINCE_SQL,
    LOSSY_LINKS_SQL,
    lossy_links,
    lossy_links_since,
    run_query,
)

from nodes import wait_for

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "operations.md"


async def _write_far_node(pg_url: str, peer_ids: list[str]) -> str:
    """A node on another machine: one lossy open link, one open at exactly 5 %, one lossy but closed."""
    owner = Identity.generate().peer_id
    store = await Store.open(pg_url, owner)
    now = time.time()
    try:
        for link_id, peer_id, state, loss in (
            ("far-lossy", peer_ids[0], "open", 12.5),
            ("far-edge", peer_ids[1], "open", 5.0),
            ("far-closed", peer_ids[1], "closed", 40.0),
        ):
            await store.upsert_link(
                {"link_id": link_id, "peer_id": peer_id, "direction": "outbound", "state": state}
            )
            sample = {
                "link_id": link_id,
                "peer_id": peer_id,
                "health": "bad",
                "loss_pct": loss,
                "rtt_ms": 80.0,
            }
            await store.add_samples([{**sample, "at": now}], [sample])
    finally:
        await store.close()
    return owner


def test_fleet_query_finds_lossy_links_across_owners(node_factory, pg_url: str) -> None:
    extra = ["--store", pg_url, "--qos-interval", "1", "--probe-rate", "5"]
    a, b = node_factory.many("a", "b", extra=extra)
    assert a.dial(b).status_code == 200
    for node, other in ((a, b), (b, a)):
        wait_for(
            lambda n=node, o=other: (lk := n.link_to(o.peer_id)) and lk["loss_pct"] is not None,
            20,
            what="QoS sampled on both sides",
        )
    far = asyncio.run(_write_far_node(pg_url, [a.peer_id, b.peer_id]))

    every_open = asyncio.run(run_query(pg_url, "SELECT * FROM mesh_links WHERE state = 'open'"))
    assert {r["owner"] for r in every_open} == {a.peer_id, b.peer_id, far}  # one database, three owners
    expected = {
        (r["owner"], r["link_id"]) for r in every_open if r["loss_pct"] is not None and r["loss_pct"] > 5
    }

    lossy = asyncio.run(lossy_links(pg_url, 5.0))
    assert {(r["owner"], r["link_id"]) for r in lossy} == expected
    assert (far, "far-lossy") in expected and (far, "far-edge") not in expected  # "over" 5 %, not at
    assert all(r["link_id"] != "far-closed" for r in lossy)  # only open links
    top = lossy[0]
    assert (top["owner"], top["peer_id"], top["loss_pct"]) == (far, a.peer_id, 12.5)  # worst first

    everyone = asyncio.run(lossy_links(pg_url, -1.0))  # a threshold below 0 lists every measured link
    assert {(r["owner"], r["peer_id"]) for r in everyone} >= {(a.peer_id, b.peer_id), (b.peer_id, a.peer_id)}

    since = asyncio.run(lossy_links_since(pg_url, since=0.0, min_loss_pct=5.0))
    by_link = {(r["owner"], r["link_id"]): r for r in since}
    assert by_link[(far, "far-lossy")]["avg_loss_pct"] == 12.5
    assert by_link[(far, "far-closed")]["avg_loss_pct"] == 40.0  # history keeps closed links
    assert (far, "far-edge") not in by_link
    assert all(r["avg_loss_pct"] > 5 for r in since)


def test_the_guide_quotes_the_fleet_sql_verbatim() -> None:
    guide = GUIDE.read_text()
    for sql in (LOSSY_LINKS_SQL, LOSSY_LINKS_SINCE_SQL):
        assert f"```sql\n{sql};\n```" in guide
    printed = subprocess.run(
        [sys.executable, "-m", "f0mesh.store.fleet", "lossy-links"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert printed.returncode == 0 and printed.stdout == LOSSY_LINKS_SQL + ";\n"
    assert sa.text(LOSSY_LINKS_SQL).compile().params == {"min_loss_pct": None}
