"""Direct messages and queries between real nodes: a line a - b - c, where a and c hold no link.

One module-scoped mesh serves every test (the suite is near its time budget): tags and keys reach
a through b's peer exchange, a message to c goes through b, and b keeps nothing of it.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from f0mesh.config import NodeConfig
from f0mesh.direct import MAX_FRAME_CT, seal
from f0mesh.identity import Identity
from f0mesh.node import Node
from f0mesh.peer_record import PeerRecord
from f0mesh.rtc.close_reason import CloseReason

from nodes import TOKEN, NodeProcess, free_port, wait_for

NO_AUTODIAL = ["--d-lo", "0", "--d", "0", "--d-hi", "8", "--qos-interval", "5"]


@pytest.fixture(scope="module")
def line(tmp_path_factory) -> Iterator[tuple[NodeProcess, NodeProcess, NodeProcess]]:
    root: Path = tmp_path_factory.mktemp("direct")
    nodes = [
        NodeProcess(root / "a", extra=[*NO_AUTODIAL, "--tag", "role=asker"]),
        NodeProcess(root / "b", extra=[*NO_AUTODIAL, "--tag", "role=relay"]),
        NodeProcess(
            root / "c",
            # --pex-min-trust 0: c reads a stranger's peer exchange, so the forged records reach the check
            extra=[*NO_AUTODIAL, "--tag", "role=edge", "--tag", "region=eu", "--pex-min-trust", "0"],
        ),
    ]
    try:
        a, b, c = (n.start() for n in nodes)
        assert c.dial(b).status_code == 200
        wait_for(
            lambda: _tags(b, c.peer_id) == {"role": "edge", "region": "eu"}, 30, what="b learns c's record"
        )
        assert a.dial(b).status_code == 200  # b's peer exchange now hands a the record of c
        wait_for(
            lambda: _tags(a, c.peer_id) == {"role": "edge", "region": "eu"}, 30, what="a learns c's tags"
        )
        yield a, b, c
    finally:
        for node in nodes:
            node.close()


def _tags(node: NodeProcess, peer_id: str) -> dict | None:
    for peer in node.http.get("/api/peers").json()["peers"]:
        if peer["peer_id"] == peer_id:
            return peer["tags"]
    return None


class Listener(threading.Thread):
    """Reads a node's ``direct`` events (admin stream) until one arrives or the timeout."""

    def __init__(self, node: NodeProcess, token: str | None = TOKEN) -> None:
        super().__init__(daemon=True)
        self.node, self.token = node, token
        self.events: list[dict] = []
        self.ready = threading.Event()

    def run(self) -> None:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        try:
            with httpx.stream(
                "GET", f"{self.node.url}/api/events", params={"topic": "direct"}, headers=headers, timeout=15
            ) as response:
                for line in response.iter_lines():
                    self.ready.set()
                    if line.startswith("data: "):
                        self.events.append(json.loads(line[6:]))
                        return
        except httpx.HTTPError:
            self.ready.set()


def test_tags_round_trip_through_peer_exchange(line) -> None:
    a, b, c = line
    assert _tags(a, b.peer_id) == {"role": "relay"}
    assert a.link_to(c.peer_id) is None  # no link: what follows goes through b


def test_a_direct_message_two_hops_away_reaches_only_its_addressee_and_the_relay_keeps_nothing(line) -> None:
    a, b, c = line
    listener, anonymous = Listener(c), Listener(c, token=None)
    for stream in (listener, anonymous):
        stream.start()
        assert stream.ready.wait(10)
    marker = "only-c-may-read-this-7f3a"
    sent = a.http.post("/api/direct", json={"peer_id": c.peer_id, "payload": {"secret": marker}})
    assert sent.status_code == 200, sent.text
    listener.join(15)
    anonymous.join(1)
    (event,) = listener.events
    assert event["data"]["from"] == a.peer_id and event["data"]["payload"] == {"secret": marker}
    assert event["data"]["id"] == sent.json()["id"]
    assert anonymous.events == []  # decrypted direct messages are for the admin token only
    frame_id = bytes.fromhex(sent.json()["id"])
    for path in b.data_dir.rglob("*"):  # the relay's store, WAL and logs: no trace of the frame
        if path.is_file():
            data = path.read_bytes()
            assert frame_id not in data and sent.json()["id"].encode() not in data, path
            assert marker.encode() not in data, path
    assert "direct" not in {m["topic"] for m in b.http.get("/api/gossip/messages").json()["messages"]}


def test_a_payload_msgpack_cannot_carry_is_a_400(line) -> None:
    """JSON integers have no size limit and msgpack's stop at 64 bits: such a payload was a 500 (an
    OverflowError out of the packer; found by the API fuzz), now 400 ``bad_payload`` like any other."""
    a, _b, c = line
    for path, body in (
        ("/api/direct", {"peer_id": c.peer_id, "payload": {"n": 2**64}}),
        ("/api/query", {"name": "f0mesh.ping", "payload": [-(2**63) - 1], "timeout": 1}),
    ):
        answer = a.http.post(path, json=body)
        assert answer.status_code == 400 and answer.json()["error"] == "bad_payload", (path, answer.text)


def test_a_query_by_tag_is_answered_through_the_relay_and_silent_targets_are_named(line) -> None:
    a, b, c = line
    by_tag = a.http.post(
        "/api/query", json={"name": "f0mesh.ping", "filter": {"tags": {"region": "eu"}}, "timeout": 10}
    ).json()
    assert by_tag["targets"] == [c.peer_id], by_tag
    assert by_tag["answers"] == [
        {"peer_id": c.peer_id, "answer": {"peer_id": c.peer_id, "tags": {"role": "edge", "region": "eu"}}}
    ]
    assert by_tag["acks"] == [c.peer_id] and by_tag["no_answer"] == []

    stranger = "12D3KooWRs8yqTQLJ1nVbZDsGegbfWvqq8rA3V9i86ZEVGnNZ9Ta"
    everyone = a.http.post(
        "/api/query",
        json={
            "name": "f0mesh.ping",
            "filter": {"peers": [a.peer_id, b.peer_id, c.peer_id, stranger]},
            "timeout": 3,
        },
    ).json()
    assert sorted(x["peer_id"] for x in everyone["answers"]) == sorted([a.peer_id, b.peer_id, c.peer_id])
    assert everyone["no_answer"] == [] and [e["peer_id"] for e in everyone["errors"]] == [stranger]
    assert a.http.post("/api/query", json={"name": "x", "timeout": 99}).status_code == 422
    assert httpx.post(f"{a.url}/api/query", json={"name": "f0mesh.ping"}).status_code == 401


def test_the_cli_shows_tags_and_asks_queries(line) -> None:
    a, _, c = line

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("F0MESH_")} | {"COLUMNS": "250"}
        argv = [sys.executable, "-m", "f0mesh", *args, "--node", a.url, "--admin-token", TOKEN]
        return subprocess.run(argv, capture_output=True, text=True, timeout=60, env=env)

    peers = cli("peers", "--wide")
    assert peers.returncode == 0 and "region=eu role=edge" in peers.stdout, peers.stdout + peers.stderr
    asked = cli("query", "f0mesh.ping", "--tag", "role=edge", "--timeout", "10")
    assert asked.returncode == 0, asked.stderr
    assert asked.stdout.startswith(f"{c.peer_id} ") and "1 of 1 answered" in asked.stderr, asked
    refused = cli("query", "f0mesh.ping", "--tag", "Not A Tag")
    assert refused.returncode == 2 and "Traceback" not in refused.stderr


async def test_forged_or_oversized_frames_and_records_are_dropped_with_an_audit_row(line, tmp_path) -> None:
    """A hostile neighbour of c (an in-process node) sends frames and peer records no honest node makes."""
    c = line[2]
    attacker = Node(
        NodeConfig(data_dir=tmp_path / "attacker", port=free_port(), admin_token="attacker-token")
    )
    await attacker.start()
    try:
        link = await attacker.links.dial_url(c.url)
        for _ in range(100):  # c's peer exchange brings its record, and so its key
            if attacker.book.x25519(c.peer_id):
                break
            await asyncio.sleep(0.1)
        key = attacker.book.x25519(c.peer_id)
        assert key is not None, "c's record never reached the attacker"
        frame = seal(attacker.identity, c.peer_id, key, "msg", b"{}")
        await link.send({**frame, "ct": frame["ct"][:-1] + bytes([frame["ct"][-1] ^ 1])})
        await link.send({**frame, "id": b"o" * 16, "ct": b"x" * (MAX_FRAME_CT + 1)})
        await link.send({**frame, "id": b"h" * 16, "hops": 99})
        victim = Identity.generate()
        honest = PeerRecord.create(victim, "http://127.0.0.1:9/victim", tags={"role": "db"}).to_wire()
        forged = {**honest, "tags": {"role": "admin"}}  # the victim never said so
        oversized = {
            **PeerRecord.create(attacker.identity, "http://127.0.0.1:9/a").to_wire(),
            "pad": "x" * 4000,
        }
        await link.send({"t": "pex", "records": [forged, oversized]})

        def reasons() -> set[str]:
            rows = c.http.get("/api/audit", params={"limit": 1000, "event": "rejected"}).json()["entries"]
            return {r["reason"] for r in rows if r["peer_id"] == attacker.peer_id}

        for _ in range(100):
            if {"direct_forged", "direct_too_large", "direct_malformed", "pex_record"} <= reasons():
                break
            await asyncio.sleep(0.1)
        assert {"direct_forged", "direct_too_large", "direct_malformed", "pex_record"} <= reasons()
        assert _tags(c, victim.peer_id) is None  # neither record was believed
        assert c.http.get("/healthz").status_code == 200
        await attacker.links.close_link(c.peer_id, CloseReason.OPERATOR, "attacker done")
    finally:
        await attacker.stop()
