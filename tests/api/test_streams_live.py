"""Topic streams and membership events between real node processes over real links (issue 22)."""

from __future__ import annotations

import base64
import json
import os
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import httpx

from f0mesh.sse_reader import ServerEvent, parse

from nodes import TOKEN, wait_for


def linked(node_factory, *names: str):
    nodes = node_factory.many(*names)
    for other in nodes[1:]:
        assert nodes[0].dial(other).status_code == 200
    for other in nodes[1:]:
        wait_for(
            lambda o=other: nodes[0].link_to(o.peer_id) and o.link_to(nodes[0].peer_id), 30, 0.2, "links"
        )
        wait_for(
            lambda o=other: o.link_to(nodes[0].peer_id)["state"] == "open",
            30,
            0.2,
            "the link open at both ends",
        )
    return nodes


def messages(events: Iterator[ServerEvent], count: int) -> list[dict]:
    """The next ``count`` message events; the stream's read timeout bounds every wait."""
    got: list[dict] = []
    for item in events:
        if item.event == "id":  # the position the stream started at
            continue
        assert item.event == "message", item
        got.append({**item.data, "sse_id": item.id})
        if len(got) == count:
            break
    return got


def stream(node, topic: str, last_id: str | None = None):
    headers = {"Last-Event-ID": last_id} if last_id else {}
    http = httpx.Client(base_url=node.url, timeout=httpx.Timeout(10.0, read=30.0))
    return http, http.stream("GET", "/api/gossip/subscribe", params={"topic": topic}, headers=headers)


def test_bytes_cross_a_link_and_a_dropped_stream_resumes_without_loss_or_repeat(node_factory) -> None:
    a, b = linked(node_factory, "a", "b")
    raw = bytes(range(256)) * 4
    http, request = stream(b, "news")
    with http, request as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        events = parse(response.iter_lines())
        sent = a.http.post(
            "/api/gossip", json={"topic": "news", "payload_b64": base64.b64encode(raw).decode()}
        )
        assert sent.status_code == 200, sent.text
        (first,) = messages(events, 1)
    assert first["id"] == sent.json()["id"] and first["origin"] == a.peer_id
    assert base64.b64decode(first["payload_b64"]) == raw and "payload" not in first
    assert first["sse_id"] == str(first["n"])

    # the consumer is gone; three messages arrive at b meanwhile
    while_away = [
        a.http.post("/api/gossip", json={"topic": "news", "payload": i}).json()["id"] for i in range(3)
    ]
    wait_for(
        lambda: (
            {m["id"] for m in b.http.get("/api/gossip/messages", params={"topic": "news"}).json()["messages"]}
            >= set(while_away)
        ),
        30,
        0.2,
        "the messages stored at b",
    )
    http, request = stream(b, "news", last_id=first["sse_id"])
    with http, request as response:
        events = parse(response.iter_lines())
        replayed = messages(events, 3)
        live = a.http.post("/api/gossip", json={"topic": "news", "payload": "live"}).json()["id"]
        (after,) = messages(events, 1)
    assert sorted(m["id"] for m in replayed) == sorted(while_away)  # received in whatever order links gave
    ids = [int(m["sse_id"]) for m in [*replayed, after]]
    assert ids == sorted(set(ids)) and ids[0] > int(first["sse_id"])
    assert after["id"] == live and after["payload"] == "live"


def test_a_killed_node_is_a_failed_member_for_its_neighbour(node_factory) -> None:
    a, b = linked(node_factory, "a", "b")
    env = {k: v for k, v in os.environ.items() if not k.startswith("F0MESH_")}
    monitor = subprocess.Popen(
        [sys.executable, "-m", "f0mesh", "monitor", "--json", "--node", a.url, "--admin-token", TOKEN],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    lines: queue.Queue[str] = queue.Queue()
    notes: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in monitor.stdout], daemon=True).start()
    threading.Thread(target=lambda: [notes.put(line) for line in monitor.stderr], daemon=True).start()
    try:
        assert notes.get(timeout=30).startswith("following "), "the monitor did not connect"
        b.kill()
        deadline = time.monotonic() + 60
        seen = []
        while time.monotonic() < deadline:
            try:
                event = json.loads(lines.get(timeout=1.0))
            except queue.Empty:
                assert monitor.poll() is None, list(notes.queue)
                continue
            seen.append(event)
            if event["topic"] == "member" and event["data"]["peer_id"] == b.peer_id:
                break
        else:
            raise AssertionError(f"no membership event for the killed node within 60 s; saw {seen}")
        assert event["data"]["event"] == "failed", event
        assert event["data"]["reason"], event
    finally:
        monitor.terminate()
        monitor.wait(timeout=10)


def test_f0mesh_subscribe_follows_a_restarted_node_without_loss_or_repeat(node_factory) -> None:
    a = node_factory("a")
    env = {k: v for k, v in os.environ.items() if not k.startswith("F0MESH_")}
    cli = subprocess.Popen(
        [sys.executable, "-m", "f0mesh", "subscribe", "news", "--json", "--count", "4", "--node", a.url],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    lines: queue.Queue[str] = queue.Queue()
    notes: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in cli.stdout], daemon=True).start()
    threading.Thread(target=lambda: [notes.put(line) for line in cli.stderr], daemon=True).start()
    try:
        assert notes.get(timeout=30).startswith("following "), "f0mesh subscribe did not connect"
        sent = [a.http.post("/api/gossip", json={"topic": "news", "payload": 0}).json()["id"]]
        assert json.loads(lines.get(timeout=30))["id"] == sent[0]
        a.stop()
        a.start()
        sent += [
            a.http.post("/api/gossip", json={"topic": "news", "payload": i}).json()["id"] for i in (1, 2, 3)
        ]
        assert cli.wait(timeout=90) == 0, list(notes.queue)
        rest = [json.loads(lines.get(timeout=5)) for _ in range(3)]
    finally:
        if cli.poll() is None:
            cli.terminate()
            cli.wait(timeout=10)
    assert [m["id"] for m in rest] == sent[1:] and [m["payload"] for m in rest] == [1, 2, 3]
    assert lines.empty()
    assert any(note.startswith("following ") for note in notes.queue)  # the first was taken: it reconnected
