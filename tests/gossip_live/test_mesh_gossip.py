"""Gossip over real WebRTC links between node processes, in a sparse mesh."""

from __future__ import annotations

import collections
import concurrent.futures
import math
import random
import time

from nodes import wait_for

SPARSE = ["--d-lo", "2", "--d", "3", "--d-hi", "4", "--qos-interval", "5"]


def _ids(node, topic: str) -> dict[str, dict]:
    rows = node.http.get("/api/gossip/messages", params={"topic": topic, "limit": 10000}).json()["messages"]
    return {m["id"]: m for m in rows}


def test_sparse_mesh_delivers_everything_once_with_few_hops(node_factory) -> None:
    first = node_factory("g", extra=SPARSE)
    nodes = [first, *node_factory.many(*["g"] * 9, extra=[*SPARSE, "--bootstrap", first.url])]
    history: list[tuple[float, list[int]]] = []
    started = time.monotonic()

    def sparse() -> list[int] | None:
        """Every node linked and none far above D_hi: a node briefly past it prunes on its next tick."""
        degrees = [len(n.open_links()) for n in nodes]
        history.append((round(time.monotonic() - started, 1), degrees))
        return degrees if min(degrees) >= 2 and max(degrees) <= 5 else None

    try:
        wait_for(sparse, 90, 0.5, "every node linked, the mesh sparse (most messages need several hops)")
    finally:
        print("degrees over time:", *history, sep="\n  ")

    origins = nodes[::2]
    rng = random.Random(7)
    published: list[str] = []
    restarted = nodes[5]

    def publish(i: int) -> str:
        origin = origins[i % len(origins)]
        r = origin.http.post(
            "/api/gossip", json={"topic": "load", "payload": {"n": i, "pad": "x" * rng.randint(0, 200)}}
        )
        assert r.status_code == 200, r.text
        return r.json()["id"]

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        published += pool.map(publish, range(100))
    restarted.stop()
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        published += pool.map(publish, range(100, 200))
    restarted.start()
    assert len(set(published)) == 200

    def everyone_has_all() -> bool:
        return all(set(published) <= set(_ids(n, "load")) for n in nodes)

    wait_for(everyone_has_all, 120, 1.0, "all 200 messages at all 10 nodes (the restarted one by repair)")
    bound = math.ceil(math.log(len(nodes), 3)) + 2
    hops = []
    for n in nodes:
        rows = _ids(n, "load")
        assert len(rows) == 200  # each stored once
        hops += [rows[i]["hops"] for i in published if rows[i]["origin"] != n.peer_id]
    within = sum(1 for h in hops if h <= bound) / len(hops)
    assert within >= 0.99, (within, collections.Counter(hops))
    audit = restarted.http.get("/api/audit", params={"limit": 10000}).json()["entries"]
    assert any(e["event"] == "received" for e in audit)
