"""Two nodes sharing one PostgreSQL database: rows kept apart by owner, the fleet queryable."""

from __future__ import annotations

import asyncio

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from f0mesh.store.url import to_async_url

from nodes import wait_for


def test_two_nodes_share_one_postgresql_database(node_factory, pg_url: str) -> None:
    extra = ["--store", pg_url, "--qos-interval", "1", "--probe-rate", "5"]
    a, b = node_factory.many("a", "b", extra=extra)
    assert a.dial(b).status_code == 200
    r = a.http.post("/api/gossip", json={"topic": "fleet", "payload": {"x": 1}})
    assert r.status_code == 200
    wait_for(lambda: b.http.get("/api/gossip/messages", params={"topic": "fleet"}).json()["messages"], 20)
    wait_for(lambda: (lk := a.link_to(b.peer_id)) and lk["rtt_ms"] is not None, 20, what="QoS sampled")

    async def query() -> tuple[dict[str, int], list]:
        engine = create_async_engine(to_async_url(pg_url))
        try:
            async with engine.connect() as conn:
                owners = dict(
                    (
                        await conn.execute(
                            sa.text("SELECT owner, count(*) FROM gossip_messages GROUP BY owner")
                        )
                    ).all()
                )
                lossy = (
                    await conn.execute(
                        sa.text(
                            "SELECT owner, peer_id, loss_pct FROM mesh_links "
                            "WHERE state = 'open' AND loss_pct >= 0 ORDER BY owner"
                        )
                    )
                ).all()
        finally:
            await engine.dispose()
        return owners, lossy

    def both_sampled() -> tuple[dict[str, int], list] | None:
        # Each node writes its link's figures at its own sampling tick: wait for both rows.
        owners, links = asyncio.run(query())
        return (owners, links) if {row[0] for row in links} == {a.peer_id, b.peer_id} else None

    owners, links = wait_for(both_sampled, 20, 0.5, "both nodes' sampled links in the shared database")
    assert owners.get(a.peer_id, 0) >= 1 and owners.get(b.peer_id, 0) >= 1
    assert all(row[2] >= 0 for row in links)
    assert [p["peer_id"] for p in a.http.get("/api/peers").json()["peers"]] == [b.peer_id]
