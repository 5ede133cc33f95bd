"""A hostile peer on a real link: every attack is refused with its audit reason, and the honest
traffic published meanwhile still arrives. The attacker is an in-process f0mesh Node whose link
we use to send hand-crafted frames; the target is a real ``f0mesh up`` process."""

from __future__ import annotations

import asyncio
import time

from f0mesh.config import NodeConfig
from f0mesh.crdt import HLCTimestamp
from f0mesh.gossip import Envelope
from f0mesh.identity import Identity
from f0mesh.node import Node

from nodes import free_port


async def poll(fn, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = await asyncio.to_thread(fn)
        if value:
            return value
        await asyncio.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


def rejected(node, peer_id: str) -> dict[str, int]:
    entries = node.http.get("/api/audit", params={"limit": 10000, "event": "rejected"}).json()["entries"]
    counts: dict[str, int] = {}
    for e in entries:
        if e["peer_id"] == peer_id:
            counts[e["reason"]] = counts.get(e["reason"], 0) + 1
    return counts


def envelope(identity: Identity, seq: int, wall_ms: int, payload, topic: str = "attack") -> Envelope:
    return Envelope.create(identity, seq, HLCTimestamp(wall_ms, 0, identity.peer_id), topic, payload, 8)


async def test_attacks_are_rejected_with_reasons_and_honest_traffic_flows(node_factory, tmp_path) -> None:
    target = await asyncio.to_thread(node_factory, "target")
    honest = await asyncio.to_thread(node_factory, "honest")
    assert (await asyncio.to_thread(honest.dial, target)).status_code == 200
    attacker = Node(NodeConfig(data_dir=tmp_path / "attacker", port=free_port(), admin_token="x"))
    await attacker.start()
    try:
        link = await attacker.links.dial_url(target.url)
        me = attacker.identity
        now_ms = int(time.time() * 1000)

        async def send(raws: list[bytes]) -> None:
            await link.send({"t": "gossip", "m": {"type": "msgs", "msgs": raws}})

        # Flood at ten times the floor burst while an honest neighbour publishes. Being cut to a rate
        # limit is no invalid message: the attacker keeps its gossip score through this part.
        flood = [envelope(me, 100 + i, now_ms + i, {"i": i}, topic="flood").encode() for i in range(1000)]
        honest_ids = []
        for chunk_start in range(0, len(flood), 100):
            await send(flood[chunk_start : chunk_start + 100])
            r = await asyncio.to_thread(
                honest.http.post, "/api/gossip", json={"topic": "honest", "payload": {"n": chunk_start}}
            )
            honest_ids.append(r.json()["id"])
        await poll(lambda: rejected(target, me.peer_id).get("rate_limited", 0) > 0, 20, "flood cut")

        def honest_arrived() -> bool:
            rows = target.http.get("/api/gossip/messages", params={"topic": "honest", "limit": 1000}).json()
            return set(honest_ids) <= {m["id"] for m in rows["messages"]}

        await poll(honest_arrived, 30, "every honest message delivered during the flood")
        accepted = len(
            (
                await asyncio.to_thread(
                    target.http.get, "/api/gossip/messages", params={"topic": "flood", "limit": 10000}
                )
            ).json()["messages"]
        )
        assert 0 < accepted < 600, accepted  # cut near the limit: floor burst 100 plus the refill

        # Invalid messages: each refused with its reason until the attacker's score (-10 per invalid,
        # squared, against at most +20 earned by trust and first deliveries) falls below graylist; what
        # it sends then is ignored, and the next heartbeat disconnects it and refuses its offers.
        good = envelope(me, 1, now_ms, {"ok": True})
        forged = good._replace(signature=Identity.generate().sign(good.signed))
        await send([forged.encode()])
        await send([envelope(me, 2, now_ms - 600_000, "old").encode()])
        await send([envelope(me, 3, now_ms, "x" * 70_000).encode()])
        await send([b"\x93garbage"])
        await send([envelope(me, 4, now_ms + 300_000, "future").encode()])
        await send([envelope(me, 5, now_ms, "valid, but from a graylisted peer").encode()])
        expected = {"bad_signature", "replay", "too_large", "malformed", "graylisted"}
        counts = await poll(
            lambda: (c := rejected(target, me.peer_id)) and expected <= set(c) and c, 20, "audited rejections"
        )
        assert all(counts[r] >= 1 for r in expected), counts

        def cut_off() -> list[dict]:
            links = target.http.get("/api/mesh-rtc/links").json()["links"]
            return [
                x
                for x in links
                if x["peer_id"] == me.peer_id
                and (x["reason"] or "").startswith("gossip score below graylist")
            ]

        [row] = await poll(cut_off, 20, "the attacker disconnected for its score")
        assert row["state"] != "open"
        refused = None
        try:
            await attacker.links.dial_url(target.url)
        except Exception as exc:  # held off: the offer is refused
            refused = exc
        assert refused is not None
        trust = (await asyncio.to_thread(target.http.get, "/api/trust")).json()["components"]
        assert trust[me.peer_id]["behaviour"] < 0
        assert (await asyncio.to_thread(target.http.get, "/healthz")).json()["status"] == "ok"
    finally:
        await attacker.stop()
