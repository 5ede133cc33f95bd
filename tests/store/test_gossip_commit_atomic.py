"""A gossip commit is one transaction on both backends: its rows go to the driver's executemany as
tuples (issue #25), and must still fall with the batch's audit rows."""

from __future__ import annotations

import secrets

import psycopg
import pytest

from f0mesh.identity import Identity
from f0mesh.store import Store
from f0mesh.store.store import COPY_MIN_ROWS, _CopyInsert


def message(i: int) -> dict:
    return {
        "id": f"a{i:031d}",
        "origin": "o",
        "seq": i,
        "topic": "t",
        "payload": {"i": i},
        "hops": 0,
        "hlc": f"{i}",
        "created_at": 1000.0 + i,
        "received_at": 1000.0 + i,
        "raw": b"r",
    }


def audit(i: int, at: float | None = 1.0) -> dict:
    return {"at": at, "event": "accepted", "message_id": message(i)["id"], "peer": "p", "reason": None}


async def test_a_failed_audit_row_takes_its_messages_with_it(store_url: str) -> None:
    store = await Store.open(store_url, Identity.generate().peer_id)
    try:
        await store.commit_gossip([message(1)], [audit(1)])
        # the audit insert runs after the messages' and breaks NOT NULL: nothing of the batch stays
        with pytest.raises(Exception, match=r"(?i)not null|null value"):
            await store.commit_gossip([message(2), message(3)], [audit(2), audit(3, at=None)])
        assert [m["id"] for m in await store.list_messages(since=0)] == [message(1)["id"]]
        assert await store.last_message_n() == 1
        # the connection went back clean: the next batch commits, numbered after the last kept row
        await store.commit_gossip([message(4)], [audit(4)])
        got = await store.list_messages(since=0)
        assert [(m["id"], m["n"]) for m in got] == [(message(1)["id"], 1), (message(4)["id"], 2)]
        assert await store.get_raw_messages([message(2)["id"], message(3)["id"]]) == {}
    finally:
        await store.close()


async def test_large_batches_skip_stored_rows_and_fall_whole(store_url: str) -> None:
    """Batches of COPY_MIN_ROWS and more take PostgreSQL's COPY, through a staging table since COPY
    has no ON CONFLICT: rows already stored are skipped, the rest numbered in order, payloads and
    raw bytes kept; a bad row takes the whole batch with it and leaves the staging table empty."""
    store = await Store.open(store_url, Identity.generate().peer_id)
    try:
        big = COPY_MIN_ROWS + 4
        assert isinstance(store._gossip_insert, _CopyInsert) is (store.backend == "postgresql")
        first = [message(i) for i in range(1, big + 1)]
        first[0]["payload"] = b"\x00\xffbin"
        first[1]["raw"] = b"\x00" * 300
        await store.commit_gossip(first, [audit(i) for i in range(1, big + 1)])
        # half already stored, half new: only the new ones are stored, numbered after the first batch
        second = [message(i) for i in range(big // 2 + 1, big + big // 2 + 1)]
        broken = [audit(i, at=None if i == big - 1 else 1.0) for i in range(big)]
        with pytest.raises(Exception, match=r"(?i)not null|null value"):
            await store.commit_gossip(second, broken)
        assert await store.last_message_n() == big
        await store.commit_gossip(second, [audit(i) for i in range(big)])
        got = await store.list_messages(since=0, limit=100)
        new_ids = [message(i)["id"] for i in range(big + 1, big + big // 2 + 1)]
        assert [m["id"] for m in got] == [m["id"] for m in first] + new_ids
        assert [m["n"] for m in got][-len(new_ids) :] == list(range(2 * big - len(new_ids) + 1, 2 * big + 1))
        assert got[0]["payload"] == b"\x00\xffbin" and got[2]["payload"] == {"i": 3}
        assert (await store.get_raw_messages([first[1]["id"]]))[first[1]["id"]] == b"\x00" * 300
        audits = await store.list_audit(limit=1000)
        assert len(audits) == 2 * big
    finally:
        await store.close()


async def test_a_role_without_temporary_tables_keeps_the_executemany(pg_url: str) -> None:
    """COPY of messages needs a temporary table; a role refused them still stores large batches."""
    role = f"f0notemp{secrets.token_hex(4)}"
    database = pg_url.rsplit("/", 1)[1]
    with psycopg.connect(pg_url, autocommit=True) as admin:
        admin.execute(f"CREATE ROLE {role} LOGIN")
        admin.execute(f"ALTER DATABASE {database} OWNER TO {role}")
        admin.execute(f"REVOKE TEMPORARY ON DATABASE {database} FROM PUBLIC, {role}")
    store = await Store.open(pg_url.replace("//postgres@", f"//{role}@"), Identity.generate().peer_id)
    try:
        batch = [message(i) for i in range(1, COPY_MIN_ROWS + 5)]
        await store.commit_gossip(batch, [audit(i) for i in range(1, COPY_MIN_ROWS + 5)])
        assert [m["id"] for m in await store.list_messages(since=0, limit=100)] == [m["id"] for m in batch]
        assert len(await store.list_audit(limit=100)) == len(batch)
    finally:
        await store.close()


async def test_copy_keeps_a_strangers_text_and_bytes_exactly(store_url: str) -> None:
    """What a peer controls reaches COPY's text format: its JSON payload (tabs, newlines, backslashes,
    COPY's own markers, a NUL that JSON escapes, non-ASCII) and its bytes payload and raw envelope
    (every byte value). Each comes back exactly, never splitting a row or a column; so does such text
    in a plain text column (an audit reason; the node writes only its Reason values there, and
    PostgreSQL text holds no NUL)."""
    store = await Store.open(store_url, Identity.generate().peer_id)
    try:
        nasty = "a\tb\nc\\d\\N\r\u0000é\U0001f600|\\."
        batch = [message(i) for i in range(1, COPY_MIN_ROWS + 3)]
        batch[0]["payload"] = {"s": nasty, nasty: [nasty]}
        batch[1]["payload"] = bytes(range(256))
        batch[2]["raw"] = bytes(range(256))[::-1]
        text = nasty.replace("\u0000", "")
        rows = [{**audit(i), "reason": f"{text}{i}"} for i in range(1, len(batch) + 1)]
        await store.commit_gossip(batch, rows)
        got = {m["id"]: m for m in await store.list_messages(since=0, limit=100)}
        assert len(got) == len(batch)
        assert got[batch[0]["id"]]["payload"] == {"s": nasty, nasty: [nasty]}
        assert got[batch[1]["id"]]["payload"] == bytes(range(256))
        assert (await store.get_raw_messages([batch[2]["id"]]))[batch[2]["id"]] == bytes(range(256))[::-1]
        reasons = sorted(a["reason"] for a in await store.list_audit(limit=100))
        assert reasons == sorted(f"{text}{i}" for i in range(1, len(batch) + 1))
    finally:
        await store.close()


def test_the_engines_rows_are_in_the_stores_field_order():
    """SqlGossipStore hands StoredMessage and AuditRow tuples to the store as they are."""
    from f0mesh.gossip import AuditRow, StoredMessage
    from f0mesh.store.store import GOSSIP_AUDIT_FIELDS, GOSSIP_MESSAGE_FIELDS

    assert StoredMessage._fields == GOSSIP_MESSAGE_FIELDS
    assert AuditRow._fields == GOSSIP_AUDIT_FIELDS
