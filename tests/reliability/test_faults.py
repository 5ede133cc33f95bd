"""Faults (issue 13, item 3): nodes killed with SIGKILL, while gossip flows and while they write.

* A quarter of a mesh is killed while messages flow: what is published after the kill reaches every live
  node, and the killed nodes, restarted on their data directories, rejoin and catch up.
* A node is killed in the middle of a publishing burst, requests in flight: its store is intact
  (SQLite ``PRAGMA integrity_check``; PostgreSQL transactions) and every message it acknowledged with a
  200 is stored together with its ``published`` audit row; restarted, it serves them all and never
  reuses a sequence number.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import random
import sqlite3
import threading
import time

import httpx
import psycopg
import pytest
from hostile import attacker_node

from nodes import TOKEN, NodeProcess, start_all, wait_for

SPARSE = ["--d-lo", "2", "--d", "3", "--d-hi", "5"]


def _ids(node: NodeProcess, topic: str) -> set[str]:
    rows = node.http.get("/api/gossip/messages", params={"topic": topic, "limit": 10000}).json()
    return {m["id"] for m in rows["messages"]}


def _missing(nodes: list[NodeProcess], topic: str, wanted: set[str]) -> dict[str, int]:
    missing = {n.peer_id[-6:]: len(wanted - _ids(n, topic)) for n in nodes}
    return {peer: count for peer, count in missing.items() if count}


class Flow:
    """Publishes from the given nodes in turn, every ``period`` s, in a thread; ids by phase."""

    def __init__(self, nodes: list[NodeProcess], topic: str, period: float = 0.05) -> None:
        self.nodes = nodes
        self.topic = topic
        self.period = period
        self.phase = "before"
        self.ids: dict[str, list[str]] = {"before": [], "after": []}
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Flow:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=60)

    def _run(self) -> None:
        i = 0
        while not self._stop.wait(self.period):
            node = self.nodes[i % len(self.nodes)]
            phase = self.phase
            try:
                r = node.http.post(
                    "/api/gossip", json={"topic": self.topic, "payload": {"i": i, "phase": phase}}
                )
            except httpx.HTTPError as exc:
                self.errors.append(f"{type(exc).__name__}")
            else:
                if r.status_code == 200:
                    self.ids[phase].append(r.json()["id"])
                else:
                    self.errors.append(f"{r.status_code} {r.text[:100]}")
            i += 1


@pytest.mark.parametrize(
    "size,killed",
    [pytest.param(8, 2, id="8-kill-2"), pytest.param(12, 3, id="12-kill-3", marks=pytest.mark.heavy)],
)
def test_kill_a_quarter_of_the_mesh_while_gossip_flows(node_factory, size: int, killed: int) -> None:
    first = node_factory("m", extra=SPARSE)
    nodes = [first, *node_factory.many(*["m"] * (size - 1), extra=[*SPARSE, "--bootstrap", first.url])]
    wait_for(lambda: all(len(n.open_links()) >= 2 for n in nodes), 120, 0.5, "every node linked twice")
    victims = random.Random(size).sample(nodes[1:], killed)  # never the bootstrap node
    survivors = [n for n in nodes if n not in victims]

    with Flow(survivors, "flow") as flow:
        wait_for(lambda: len(flow.ids["before"]) >= 20, 30, what="gossip flowing")
        for victim in victims:
            victim.kill()
        flow.phase = "after"
        wait_for(lambda: len(flow.ids["after"]) >= 40, 60, what="publishing after the kill")
    assert not flow.errors, flow.errors[:5]  # publishing on live nodes never failed
    after = set(flow.ids["after"])
    before = set(flow.ids["before"])
    wait_for(
        lambda: not _missing(survivors, "flow", before | after),
        90,
        1.0,
        "every message published by a live node at every live node",
    )
    # The survivors notice the dead by their heartbeat and say so. Waited for: with eager push the
    # messages above can all arrive before the heartbeat timeout has run out.
    dead_ids = {v.peer_id for v in victims}

    def noticed() -> list[NodeProcess]:
        return [
            n
            for n in survivors
            for line in (n.data_dir / "node.log").read_text(errors="replace").splitlines()
            if "(heartbeat)" in line and any(d in line for d in dead_ids)
        ]

    wait_for(noticed, 30, 0.5, "a survivor logging a heartbeat failure of a killed node")

    start_all(victims)
    wait_for(lambda: all(v.open_links() for v in victims), 90, 0.5, "restarted nodes linked again")
    more = []
    for i, node in enumerate(survivors[:3] + victims):
        r = node.http.post("/api/gossip", json={"topic": "flow", "payload": {"rejoined": i}})
        assert r.status_code == 200, r.text
        more.append(r.json()["id"])
    everything = before | after | set(more)
    wait_for(
        lambda: not _missing(nodes, "flow", everything),
        120,
        1.0,
        "restarted nodes caught up on everything, and their new messages reached all",
    )
    for n in nodes:
        assert n.http.get("/healthz").json()["status"] == "ok"
    with concurrent.futures.ThreadPoolExecutor(len(nodes)) as pool:  # stopping one by one takes long
        codes = list(pool.map(NodeProcess.stop, nodes))
    # Not asserted: a node that does not stop on SIGTERM is test_stop_is_not_lost_... below, made
    # deterministic there; here it shows up as -9 (killed after 15 s) now and then.
    print(f"exit codes after SIGTERM: {codes}")
    print(
        f"{size} nodes, {killed} killed: {len(before)} published before the kill, {len(after)} after, "
        f"{len(more)} after the restart; all at every node"
    )


# -- kill -9 in the middle of writing -------------------------------------------------------------


def _burst_then_kill(node: NodeProcess, round_: int, threads: int = 8, min_acked: int = 60) -> list[str]:
    """Publish from several threads; SIGKILL the node while requests are in flight; the acked ids."""
    acked: list[str] = []
    cut: list[int] = []
    lock = threading.Lock()
    stop = threading.Event()

    def publisher(t: int) -> int:
        sent = 0
        with httpx.Client(
            base_url=node.url, timeout=10, headers={"Authorization": f"Bearer {TOKEN}"}
        ) as client:
            while not stop.is_set():
                payload = {"round": round_, "t": t, "n": sent, "pad": "x" * random.randint(0, 2000)}
                try:
                    r = client.post("/api/gossip", json={"topic": "burst", "payload": payload})
                except httpx.HTTPError:
                    with lock:
                        cut.append(t)
                    return sent  # the node died under this request
                sent += 1
                if r.status_code == 200:
                    with lock:
                        acked.append(r.json()["id"])
        return sent

    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        futures = [pool.submit(publisher, t) for t in range(threads)]
        wait_for(lambda: len(acked) >= min_acked, 60, 0.02, "the burst acknowledged")
        time.sleep(random.uniform(0.0, 0.5))
        node.kill()  # SIGKILL: requests are in flight, the write-behind queue is mid-batch
        stop.set()
        sent = sum(f.result(timeout=30) for f in futures)
    with lock:
        print(
            f"round {round_}: {sent} requests answered ({len(acked)} with 200), {len(cut)} cut off in flight"
        )
        return list(acked)


def _sqlite_rows(node: NodeProcess) -> tuple[str, set[str], set[str], list[int]]:
    with sqlite3.connect(node.data_dir / "mesh.db") as db:
        integrity = db.execute("PRAGMA integrity_check").fetchone()[0]
        own = db.execute(
            "SELECT id, seq FROM gossip_messages WHERE owner = ? AND origin = ?", (node.peer_id, node.peer_id)
        ).fetchall()
        published = db.execute(
            "SELECT message_id FROM mesh_gossip_audit WHERE owner = ? AND event = 'published'",
            (node.peer_id,),
        ).fetchall()
    return integrity, {r[0] for r in own}, {r[0] for r in published}, [r[1] for r in own]


def _postgres_rows(url: str, peer_id: str) -> tuple[str, set[str], set[str], list[int]]:
    with psycopg.connect(url) as conn:
        own = conn.execute(
            "SELECT id, seq FROM gossip_messages WHERE owner = %(p)s AND origin = %(p)s", {"p": peer_id}
        ).fetchall()
        published = conn.execute(
            "SELECT message_id FROM mesh_gossip_audit WHERE owner = %s AND event = 'published'", (peer_id,)
        ).fetchall()
        # Every table still reads in full (no torn pages, indexes usable).
        for table in ("mesh_peers", "mesh_links", "link_samples", "mesh_gossip_audit", "crdt_state"):
            conn.execute(f"SELECT count(*) FROM {table}").fetchone()
    return "ok", {r[0] for r in own}, {r[0] for r in published}, [r[1] for r in own]


def _check_store(rows: tuple[str, set[str], set[str], list[int]], acked: set[str]) -> int:
    """Checks the store against the acknowledged ids; returns how many stored messages were never acked."""
    integrity, own, published, seqs = rows
    assert integrity == "ok", integrity
    assert not acked - own, f"{len(acked - own)} acknowledged messages lost"
    assert not acked - published, f"{len(acked - published)} acknowledged messages without a published row"
    # Messages and their audit rows commit in one transaction: never one without the other.
    assert own == published, (len(own - published), len(published - own))
    assert len(seqs) == len(set(seqs)), "a sequence number was reused after a restart"
    return len(own - acked)


def _kill_rounds(node: NodeProcess, rounds: int, rows) -> None:
    acked: set[str] = set()
    for r in range(rounds):
        acked |= set(_burst_then_kill(node, r))
        unacked = _check_store(rows(), acked)
        print(f"  store intact; {unacked} messages committed whose 200 never reached the client")
        node.start()
    # Restarted: it serves every acknowledged message and keeps publishing with fresh sequence numbers.
    assert not acked - _ids(node, "burst")
    r = node.http.post("/api/gossip", json={"topic": "burst", "payload": "after the last restart"})
    assert r.status_code == 200, r.text
    assert node.http.get("/healthz").json()["status"] == "ok"
    node.stop()
    _check_store(rows(), acked | {r.json()["id"]})
    print(f"{rounds} kills: {len(acked)} acknowledged messages, all stored with their audit rows")


@pytest.mark.parametrize(
    "rounds", [pytest.param(2, id="2"), pytest.param(6, id="6", marks=pytest.mark.heavy)]
)
def test_kill_9_while_writing_keeps_sqlite_intact_and_every_acked_message(node_factory, rounds: int) -> None:
    node = node_factory("w")
    _kill_rounds(node, rounds, lambda: _sqlite_rows(node))


def test_kill_9_while_writing_keeps_postgresql_intact_and_every_acked_message(node_factory, pg_url) -> None:
    node = node_factory("pg", extra=["--store", pg_url])
    _kill_rounds(node, 1, lambda: _postgres_rows(pg_url, node.peer_id))


# -- stopping -----------------------------------------------------------------------------------


async def test_stop_is_not_lost_when_a_link_closes_as_the_node_stops(tmp_path) -> None:
    """Seen in the 12-node run: after SIGTERM one node's HTTP server finished but the node went on pruning and
    redialling for 15 s until it was killed. Made deterministic: the wake-up a closing link sends
    (ConnectionManager.link_closed) lands in the same loop turn as the stop."""
    async with attacker_node(tmp_path / "node") as node:
        await asyncio.sleep(0.5)  # the manager is idle, waiting for a wake-up or its interval
        node.connmgr.wake()
        stopping = asyncio.ensure_future(node.connmgr.stop())
        done, _ = await asyncio.wait({stopping}, timeout=3)
        if not done:  # unstick it, so the node itself can stop
            node.connmgr._task.cancel()
            await stopping
        assert done, "ConnectionManager.stop() had not returned after 3 s"
