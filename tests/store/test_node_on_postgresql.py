"""Two nodes sharing one PostgreSQL database: rows kept apart by owner, the fleet queryable."""

from __future__ import annotations

from f0mesh.store.fleet import query

from nodes import wait_for


def test_two_nodes_share_one_postgresql_database(node_factory, pg_url: str) -> None:
    extra = ["--store", pg_url, "--qos-interval", "1", "--probe-rate", "5"]
    a, b = node_factory.many("a", "b", extra=extra)
    assert a.dial(b).status_code == 200
    r = a.http.post("/api/gossip", json={"topic": "fleet", "payload": {"x": 1}})
    assert r.status_code == 200
    wait_for(lambda: b.http.get("/api/gossip/messages", params={"topic": "fleet"}).json()["messages"], 20)
    wait_for(lambda: (lk := a.link_to(b.peer_id)) and lk["rtt_ms"] is not None, 20, what="QoS sampled")

    def both_sampled() -> tuple[dict[str, int], list] | None:
        # Each node writes its link's figures at its own sampling tick: wait for both rows.
        counts = query(pg_url, "SELECT owner, count(*) AS n FROM gossip_messages GROUP BY owner")
        owners = {r["owner"]: r["n"] for r in counts}
        links = [
            (r["owner"], r["peer_id"], r["loss_pct"])
            for r in query(
                pg_url,
                "SELECT owner, peer_id, loss_pct FROM mesh_links WHERE state = 'open' AND loss_pct >= 0"
                " ORDER BY owner",
            )
        ]
        return (owners, links) if {row[0] for row in links} == {a.peer_id, b.peer_id} else None

    owners, links = wait_for(both_sampled, 20, 0.5, "both nodes' sampled links in the shared database")
    assert owners.get(a.peer_id, 0) >= 1 and owners.get(b.peer_id, 0) >= 1
    assert all(row[2] >= 0 for row in links)
    assert [p["peer_id"] for p in a.http.get("/api/peers").json()["peers"]] == [b.peer_id]
