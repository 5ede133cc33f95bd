"""Issue 18, classes 1 and 2, against a real ``f0mesh up``: a linked stranger's counters and clocks.

The attacker is an in-process Node whose link carries hand-made state deltas (ctl pages and "state"
gossip): the target's own registry entry under its own PeerId at the top of the seq range (which bricked
c5738a4 at its next own write and at every start after), and an HLC stamp 55 s ahead with a logical counter
near the format's limit (which stopped c5738a4's clock for a minute). The target refuses both, keeps
answering writes, lowers the attacker's behaviour, and starts again. A store poisoned by hand (what a
c5738a4 victim saved) is quarantined at start instead of failing it.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time

import httpx
from hostile import attacker_node
from reliability_kit import (
    behaviour,
    close_quietly,
    envelope,
    get,
    healthy,
    poll,
    send_envelopes,
)

from f0mesh.crdt import HLCTimestamp
from f0mesh.crdt.codec import pack, pack_value
from f0mesh.crdt.hlc import MAX_LOGICAL
from f0mesh.crdt.replicated import FORMAT
from f0mesh.rtc.link import LinkState
from f0mesh.state import STATE_TOPIC
from f0mesh.state.sync import gossip_payload

TOP = 2**64 - 1


def _map(origin: str, seq: int, key: str, value: object, ts: HLCTimestamp) -> bytes:
    record = [ts, True, pack_value(value), origin, seq]
    return pack([FORMAT, "lww-map", {origin: [0, seq]}, {}, [[key, record]]])


def _page(name: str, data: bytes, xfer: int) -> dict:
    return {
        "t": "state",
        "op": "delta",
        "name": name,
        "kind": "map",
        "xfer": xfer,
        "page": 0,
        "pages": 1,
        "data": data,
    }


def _writes_answer(target) -> list[int]:
    put = target.http.put("/api/state/notes", json={"kind": "map", "value": {"t": time.time()}})
    pub = target.http.post("/api/gossip", json={"topic": "after", "payload": {"ok": True}})
    return [put.status_code, pub.status_code]


async def test_hostile_seqs_and_clocks_neither_brick_nor_stop_a_real_node(node_factory, tmp_path) -> None:
    target = await asyncio.to_thread(node_factory, "target")
    victim = target.peer_id
    async with attacker_node(tmp_path / "attacker") as attacker:
        link = await attacker.links.dial_url(target.url)
        assert link.state is LinkState.OPEN
        me = attacker.peer_id
        now_ms = int(time.time() * 1000)
        own = HLCTimestamp(now_ms, 0, victim)
        await link.send(_page("peers", _map(victim, TOP, victim, {"url": "x"}, own), 1))
        clock_stop = HLCTimestamp(now_ms + 55_000, MAX_LOGICAL - 1, me)
        await link.send(_page("notes", _map(me, 1, "k", "stop", clock_stop), 2))
        far = gossip_payload("peers", "map", _map(victim, 2**40, victim, {"url": "y"}, own))
        await send_envelopes(link, [envelope(attacker.identity, 1, far, topic=STATE_TOPIC).encode()])

        def refused() -> dict | None:
            dropped = target.http.get("/api/state").json()["dropped"]
            return (
                dropped if dropped.get("malformed", 0) >= 2 and dropped.get("bad_counter", 0) >= 1 else None
            )

        print(f"dropped by reason: {await poll(refused, 20, 'both deltas refused')}")
        for _ in range(3):  # c5738a4: 500 for about a minute (HLC.now raises), and a brick at the next write
            assert await asyncio.to_thread(_writes_answer, target) == [200, 200]
        await poll(lambda: behaviour(target, me) < 0, 10, "the attacker's behaviour below 0")
        await healthy(target)
        await close_quietly(attacker, victim)
    assert await asyncio.to_thread(target.stop) == 0
    await asyncio.to_thread(target.start)  # c5738a4 exited 1 here, at every start
    assert await asyncio.to_thread(_writes_answer, target) == [200, 200]


async def test_a_poisoned_store_is_quarantined_and_the_node_starts(node_factory) -> None:
    target = await asyncio.to_thread(node_factory, "target")
    victim = target.peer_id
    assert await asyncio.to_thread(target.stop) == 0
    started = time.monotonic()
    await asyncio.to_thread(target.start)
    clean_s = time.monotonic() - started
    assert await asyncio.to_thread(target.stop) == 0
    poisoned = _map(victim, TOP, victim, {"url": "x"}, HLCTimestamp(int(time.time() * 1000), 0, victim))
    with sqlite3.connect(target.data_dir / "mesh.db") as db:
        db.executemany(
            "INSERT OR REPLACE INTO crdt_state (owner, name, kind, data, updated_at) VALUES (?, ?, ?, ?, ?)",
            [
                (victim, "doc/peers", "map", poisoned, time.time()),
                (victim, "doc/notes", "map", b"\x00", time.time()),
            ],
        )
    started = time.monotonic()
    await asyncio.to_thread(target.start)
    print(
        f"start-up to /healthz: {clean_s:.2f} s clean, {time.monotonic() - started:.2f} s with 2 quarantined"
    )
    await healthy(target)
    listing = (await get(target, "/api/state"))["documents"]
    aside = {d["name"]: d["quarantined"] for d in listing if "quarantined" in d}
    assert set(aside) == {"peers", "notes"} and all(aside.values()), listing
    assert any(d["name"] == "peers" and "quarantined" not in d for d in listing)  # a fresh registry
    async with httpx.AsyncClient(base_url=target.url, headers=target.http.headers, timeout=30) as client:
        put = await client.put("/api/state/notes", json={"kind": "map", "value": {"again": 1}})
    assert put.status_code == 200, put.text
    assert "quarantined the saved document 'peers'" in target.log_tail(200)
