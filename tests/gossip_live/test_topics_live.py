"""Topics between real processes: a node not subscribed to a topic never stores or relays it.

Three nodes, started once for the module: A and B take ``news``, C only ``other``; B and C join
through A.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from nodes import NodeProcess, wait_for

FLAGS = ["--qos-interval", "5"]
CARRIED = {"received", "forwarded", "sent", "duplicate"}


@pytest.fixture(scope="module")
def trio(tmp_path_factory) -> Iterator[tuple[NodeProcess, NodeProcess, NodeProcess]]:
    root = tmp_path_factory.mktemp("topics")
    a = NodeProcess(root / "a", extra=[*FLAGS, "--topic", "news"]).start()
    started = [a]
    try:
        b = NodeProcess(root / "b", extra=[*FLAGS, "--topic", "news", "--bootstrap", a.url]).start()
        started.append(b)
        c = NodeProcess(root / "c", extra=[*FLAGS, "--topic", "other", "--bootstrap", a.url]).start()
        started.append(c)

        def announced() -> bool:
            heard = a.http.get("/api/gossip/subscriptions").json()["neighbours"]
            return heard.get(b.peer_id) is not None and heard.get(c.peer_id) is not None

        wait_for(announced, 60, 0.3, "A linked to B and C and told their subscriptions")
        yield a, b, c
    finally:
        for node in started:
            node.close()


def _ids(node: NodeProcess, topic: str) -> set[str]:
    rows = node.http.get("/api/gossip/messages", params={"topic": topic, "limit": 1000}).json()
    return {m["id"] for m in rows["messages"]}


def _publish(node: NodeProcess, topic: str, count: int) -> list[str]:
    ids = []
    for n in range(count):
        r = node.http.post("/api/gossip", json={"topic": topic, "payload": {"n": n}})
        assert r.status_code == 200, r.text
        ids.append(r.json()["id"])
    return ids


def test_an_unsubscribed_node_never_stores_or_relays_a_topic_the_others_deliver(trio) -> None:
    a, b, c = trio
    news = set(_publish(a, "news", 10) + _publish(b, "news", 5))
    wait_for(lambda: news <= _ids(a, "news") and news <= _ids(b, "news"), 30, 0.3, "news at A and B")
    mesh = a.http.get("/api/gossip/mesh").json()["news"]["peers"]
    assert [p["peer_id"] for p in mesh] == [b.peer_id] and isinstance(mesh[0]["score"], float)

    # the system topics still reach C: its heartbeat (the first comes up to a second after start, which
    # a fast test can beat) grafts A into its telemetry mesh
    def c_meshes_a() -> bool:
        peers = c.http.get("/api/gossip/mesh").json().get("telemetry", {}).get("peers", [])
        return a.peer_id in {p["peer_id"] for p in peers}

    wait_for(c_meshes_a, 15, 0.2, "A in C's telemetry mesh")
    assert _ids(c, "news") == set()
    entries = c.http.get("/api/audit", params={"limit": 10000}).json()["entries"]
    assert [e for e in entries if e["message_id"] in news and e["event"] in CARRIED] == []


def test_a_topic_joined_at_run_time_is_delivered_from_then_on(trio) -> None:
    a, _, c = trio
    r = c.http.post("/api/gossip/subscriptions", json={"topic": "news"})
    assert r.status_code == 200 and "news" in r.json()["topics"]

    def a_knows() -> bool:
        return "news" in (a.http.get("/api/gossip/subscriptions").json()["neighbours"].get(c.peer_id) or [])

    wait_for(a_knows, 10, 0.2, "A heard C's join")
    later = set(_publish(a, "news", 3))
    wait_for(lambda: later <= _ids(c, "news"), 20, 0.3, "news at C after its join")
