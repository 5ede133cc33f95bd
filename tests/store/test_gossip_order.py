"""The storing order n of gossip rows (cursor of streams and paging) and bytes payloads, on both backends."""

from __future__ import annotations

import sqlalchemy as sa

from f0mesh.identity import Identity
from f0mesh.store import Store
from f0mesh.store.migrations import LATEST
from f0mesh.store.schema import schema_version


def row(i: int, payload: object = None, topic: str = "t") -> dict:
    return {
        "id": f"m{i:031d}",
        "origin": "o",
        "seq": i,
        "topic": topic,
        "payload": {"i": i} if payload is None else payload,
        "hops": 0,
        "hlc": f"{i}",
        "created_at": 1000.0 + i,
        "received_at": 1000.0 + i,
        "raw": b"r",
    }


async def test_n_orders_new_rows_skips_duplicates_and_survives_pruning_everything(store_url: str) -> None:
    store = await Store.open(store_url, Identity.generate().peer_id)
    try:
        await store.commit_gossip([row(1), row(2), row(1)], [])  # a duplicate within the batch
        await store.commit_gossip([row(2), row(3, b"\x00\xff", "bin")], [])  # and one already stored
        got = await store.list_messages(since=0)
        assert [m["id"] for m in got] == [row(1)["id"], row(2)["id"], row(3)["id"]]
        ns = [m["n"] for m in got]
        assert ns[:2] == [1, 2] and ns[2] > 2  # the stored duplicate may leave a gap, never a repeat
        assert got[2]["payload"] == b"\x00\xff" and got[0]["payload"] == {"i": 1}
        assert await store.count_messages(topic="t", after=0, upto=ns[2]) == 2
        await store.prune(samples_before=0, audit_before=0, messages_before=10**12)
        assert await store.list_messages(since=0) == []
    finally:
        await store.close()
    store = await Store.open(store_url, store.owner)  # a restart forgets what it counted in memory
    try:
        await store.commit_gossip([row(4)], [])
        assert [m["n"] for m in await store.list_messages(since=ns[2])] == [ns[2] + 1]  # never n again
        assert await store.last_message_n() == ns[2] + 1
    finally:
        await store.close()


async def test_v3_database_numbers_its_messages_in_received_order(store_url: str) -> None:
    owner = Identity.generate().peer_id
    store = await Store.open(store_url, owner)
    await store.commit_gossip([row(1), row(2), row(3)], [])
    with store.engine.begin() as conn:
        conn.execute(sa.text("UPDATE gossip_messages SET received_at = 2000 - seq"))
        conn.execute(sa.text("DROP INDEX ix_gossip_n"))
        conn.execute(sa.text("ALTER TABLE gossip_messages DROP COLUMN n"))
        conn.execute(sa.text("ALTER TABLE gossip_messages DROP COLUMN payload_bin"))
        conn.execute(sa.text("DROP TABLE gossip_sequence"))
        conn.execute(sa.delete(schema_version).where(schema_version.c.version > 3))
    await store.close()
    store = await Store.open(store_url, owner)
    try:
        assert await store.schema_version() == LATEST
        assert [m["seq"] for m in await store.list_messages(since=0)] == [3, 2, 1]
        await store.commit_gossip([row(4)], [])
        assert [m["n"] for m in await store.list_messages(since=3)] == [4]
    finally:
        await store.close()
