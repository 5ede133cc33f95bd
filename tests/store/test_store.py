"""Store behaviour, identical on SQLite and on a real PostgreSQL server."""

from __future__ import annotations

import os
import stat
import threading
from typing import Any

import sqlalchemy as sa

from f0mesh.errors import ConfigError
from f0mesh.identity import Identity
from f0mesh.store import Store
from f0mesh.store.migrations import LATEST
from f0mesh.store.schema import schema_version
from f0mesh.store.store import SQLITE_CACHE_KIB


async def test_migrations_run_once_and_record_version(store_url: str) -> None:
    owner = Identity.generate().peer_id
    store = await Store.open(store_url, owner)
    try:
        assert await store.schema_version() == LATEST
    finally:
        await store.close()
    store = await Store.open(store_url, owner)
    try:
        with store.engine.connect() as conn:
            rows = conn.execute(sa.select(schema_version.c.version)).scalars().all()
        assert rows == list(range(1, LATEST + 1))
    finally:
        await store.close()


async def test_peer_crud_and_owner_isolation(store_url: str) -> None:
    a, b = Identity.generate().peer_id, Identity.generate().peer_id
    peer = Identity.generate().peer_id
    store_a = await Store.open(store_url, a)
    store_b = await Store.open(store_url, b)
    try:
        await store_a.upsert_peer(peer, url="http://127.0.0.1:9001", last_seen=100.0)
        await store_a.upsert_peer(peer, last_seen=50.0)
        row = await store_a.get_peer(peer)
        assert row is not None
        assert row["url"] == "http://127.0.0.1:9001"
        assert row["last_seen"] == 100.0
        assert await store_b.get_peer(peer) is None
        assert await store_b.list_peers() == []
        await store_a.set_peer_trust({peer: 0.25})
        assert (await store_a.list_peers())[0]["trust"] == 0.25
        assert await store_a.delete_peer(peer)
        assert await store_a.get_peer(peer) is None
    finally:
        await store_a.close()
        await store_b.close()


async def test_batched_peer_upsert_keeps_urls_and_moves_last_seen_forward(store_url: str) -> None:
    owner = Identity.generate().peer_id
    known, fresh = Identity.generate().peer_id, Identity.generate().peer_id
    store = await Store.open(store_url, owner)
    try:
        await store.upsert_peer(known, url="http://127.0.0.1:9001", last_seen=100.0)
        await store.set_peer_trust({known: 0.5})
        await store.upsert_peers(
            [
                {"peer_id": known, "url": None, "last_seen": 50.0},
                {"peer_id": fresh, "url": "http://127.0.0.1:9002", "last_seen": 70.0},
            ]
        )
        rows = {r["peer_id"]: r for r in await store.list_peers()}
        assert (rows[known]["url"], rows[known]["last_seen"], rows[known]["trust"]) == (
            "http://127.0.0.1:9001",
            100.0,
            0.5,
        )
        assert (rows[fresh]["url"], rows[fresh]["last_seen"]) == ("http://127.0.0.1:9002", 70.0)
        await store.upsert_peers([{"peer_id": known, "url": "http://127.0.0.1:9003", "last_seen": 120.0}])
        row = await store.get_peer(known)
        assert row is not None and (row["url"], row["last_seen"]) == ("http://127.0.0.1:9003", 120.0)
    finally:
        await store.close()


async def test_links_samples_and_pruning(store_url: str) -> None:
    owner, peer = Identity.generate().peer_id, Identity.generate().peer_id
    store = await Store.open(store_url, owner)
    try:
        await store.upsert_link({"link_id": "L1", "peer_id": peer, "direction": "out", "state": "open"})
        await store.add_samples(
            [
                {"link_id": "L1", "peer_id": peer, "at": float(i), "health": "good", "rtt_ms": 1.0 + i}
                for i in range(5)
            ],
            [{"link_id": "L1", "rtt_ms": 5.0}],
        )
        links = await store.list_links()
        assert len(links) == 1 and links[0]["rtt_ms"] == 5.0 and links[0]["state"] == "open"
        samples = await store.list_samples(link_id="L1")
        assert [s["rtt_ms"] for s in samples] == [1.0, 2.0, 3.0, 4.0, 5.0]
        removed = await store.prune(samples_before=3.0, audit_before=0.0, messages_before=0.0)
        assert removed["link_samples"] == 3
        assert len(await store.list_samples(link_id="L1")) == 2
        assert await store.close_stale_links("restart") == 1
        assert (await store.list_links())[0]["state"] == "closed"
    finally:
        await store.close()


async def test_gossip_rows_commit_together_and_ignore_duplicates(store_url: str) -> None:
    owner, origin = Identity.generate().peer_id, Identity.generate().peer_id
    store = await Store.open(store_url, owner)
    msg = {
        "id": "m1",
        "origin": origin,
        "seq": 7,
        "topic": "news",
        "payload": {"x": [1, 2]},
        "hops": 2,
        "hlc": "0001",
        "received_at": 10.0,
        "raw": b"\x00\x01",
        "created_at": 9.0,
    }
    audit = {"at": 10.0, "event": "received", "message_id": "m1", "peer_id": origin, "reason": None}
    try:
        await store.commit_gossip([msg], [audit])
        await store.commit_gossip([msg], [{**audit, "event": "duplicate"}])
        messages = await store.list_messages(topic="news")
        assert len(messages) == 1 and messages[0]["payload"] == {"x": [1, 2]}
        assert await store.get_raw_messages(["m1", "nope"]) == {"m1": b"\x00\x01"}
        assert await store.has_messages(["m1", "m2"]) == {"m1"}
        assert await store.max_seq(origin) == 7
        events = [a["event"] for a in await store.list_audit()]
        assert events == ["duplicate", "received"]
    finally:
        await store.close()


async def test_crdt_state_roundtrip(store_url: str) -> None:
    store = await Store.open(store_url, Identity.generate().peer_id)
    try:
        await store.put_state("doc", "lww_map", b"abc")
        await store.put_state("doc", "lww_map", b"abcd")
        assert await store.get_state("doc") == ("lww_map", b"abcd")
        assert await store.list_states() == [("doc", "lww_map")]
        assert await store.get_state("missing") is None
    finally:
        await store.close()


async def test_bad_urls_are_config_errors(tmp_path, pg_server) -> None:
    for url in (
        "mysql://x/y",
        "nonsense",
        "sqlite://",
        f"postgresql://postgres@127.0.0.1:{pg_server.port}/nodb",
    ):
        try:
            await Store.open(url, "owner")
        except ConfigError as exc:
            assert "\n" not in exc.detail
        else:
            raise AssertionError(f"{url} opened")


async def test_v1_database_is_migrated_to_latest(store_url: str) -> None:
    owner = Identity.generate().peer_id
    store = await Store.open(store_url, owner)
    with store.engine.begin() as conn:
        conn.execute(sa.text("DROP INDEX ix_gossip_created"))
        conn.execute(sa.text("ALTER TABLE gossip_messages DROP COLUMN created_at"))
        conn.execute(sa.delete(schema_version).where(schema_version.c.version > 1))
    await store.close()
    store = await Store.open(store_url, owner)
    try:
        assert await store.schema_version() == LATEST
        with store.engine.connect() as conn:
            columns = {x["name"] for x in sa.inspect(conn).get_columns("gossip_messages")}
        assert "created_at" in columns
    finally:
        await store.close()


async def test_sqlite_files_are_private_whatever_the_umask(tmp_path) -> None:
    old = os.umask(0o022)
    try:
        store = await Store.open(f"sqlite:///{tmp_path / 'new' / 'mesh.db'}", "owner")
        try:
            await store.put_state("doc", "lww_map", b"abcd")
            modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in (tmp_path / "new").iterdir()}
        finally:
            await store.close()
    finally:
        os.umask(old)
    assert {"mesh.db", "mesh.db-wal", "mesh.db-shm"} <= modes.keys(), modes
    assert set(modes.values()) == {0o600}, modes
    assert stat.S_IMODE((tmp_path / "new").stat().st_mode) == 0o700


async def test_sqlite_page_cache_is_bounded_on_the_writer_and_the_reader(tmp_path) -> None:
    """Each connection keeps its own page cache, which a long-running node's tables would fill to
    SQLite's default of 2 MiB apiece (issue #25): both threads' connections get the smaller bound."""
    store = await Store.open(f"sqlite:///{tmp_path / 'mesh.db'}", "owner")
    try:

        def cache(conn: Any) -> tuple[int, str]:
            return conn.exec_driver_sql("PRAGMA cache_size").scalar(), threading.current_thread().name

        (written, writer), (read, reader) = await store._write(cache), await store._read(cache)
    finally:
        await store.close()
    assert writer != reader and "write" in writer and "read" in reader
    assert written == read == -SQLITE_CACHE_KIB, (written, read)
    assert SQLITE_CACHE_KIB < 2000  # SQLite's default: 2000 KiB
