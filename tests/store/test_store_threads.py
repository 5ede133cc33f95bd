"""The store's asyncio adapter: transactions on its own threads, on both backends (issue #25).

A cancelled caller is never told "stored", and what it handed over is stored whole or not at all; reads
do not queue behind a write; close() lets the writes already handed over finish; a PostgreSQL connection
lost in the middle of a transaction is a 503, and the next write reconnects; and a store imports neither
SQLAlchemy's asyncio layer nor its ORM.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
import pytest
from sqlalchemy import event
from test_gossip_commit_atomic import audit, message

from f0mesh.errors import StoreUnavailableError
from f0mesh.identity import Identity
from f0mesh.store import Store
from f0mesh.store import store as store_module

WAIT_S = 10.0


@contextmanager
def held(store: Store, table: str) -> Iterator[tuple[threading.Event, threading.Event, list[Any]]]:
    """Stops the store's thread in its transaction, before the first statement on ``table``, until
    ``release`` is set (at the latest on leaving); yields (reached, release, the DBAPI connection held).
    The listener stays, spent: removing it could race the thread iterating the listeners."""
    reached, release, connections = threading.Event(), threading.Event(), []

    def hold(conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if table in statement and not reached.is_set():
            connections.append(conn.connection.dbapi_connection)
            reached.set()
            release.wait(WAIT_S)

    event.listen(store.engine, "before_cursor_execute", hold)
    try:
        yield reached, release, connections
    finally:
        release.set()


async def test_a_cancelled_commit_is_stored_whole_or_not_at_all(store_url: str) -> None:
    store = await Store.open(store_url, Identity.generate().peer_id)
    try:
        await store.commit_gossip([message(1)], [audit(1)])
        with held(store, "mesh_gossip_audit") as (reached, release, _):
            begun = asyncio.create_task(store.commit_gossip([message(2), message(3)], [audit(2), audit(3)]))
            queued = asyncio.create_task(store.commit_gossip([message(4)], [audit(4)]))
            assert await asyncio.to_thread(reached.wait, WAIT_S), "the commit never reached its audit rows"
            begun.cancel()
            queued.cancel()
            for task in (begun, queued):
                with pytest.raises(asyncio.CancelledError):
                    await task
            release.set()
        # the begun transaction ran to its commit in the thread; the queued one never started; the next
        # batch is numbered after what the thread stored, though its caller never heard of it
        await store.commit_gossip([message(5)], [audit(5)])
        got = [(m["id"], m["n"]) for m in await store.list_messages(since=0)]
        assert got == [(message(i)["id"], n) for n, i in enumerate((1, 2, 3, 5), start=1)]
        audited = {a["message_id"] for a in await store.list_audit()}
        assert audited == {message(i)["id"] for i in (1, 2, 3, 5)}
    finally:
        await store.close()


async def test_reads_do_not_wait_for_a_write(store_url: str) -> None:
    store = await Store.open(store_url, Identity.generate().peer_id)
    try:
        await store.put_state("doc", "blob", b"old")
        with held(store, "crdt_state") as (reached, release, _):
            write = asyncio.create_task(store.put_state("doc", "blob", b"new"))
            assert await asyncio.to_thread(reached.wait, WAIT_S)
            assert await asyncio.wait_for(store.get_state("doc"), WAIT_S) == ("blob", b"old")
            assert await asyncio.wait_for(store.list_states(), WAIT_S) == [("doc", "blob")]
            assert not write.done()
            release.set()
            await asyncio.wait_for(write, WAIT_S)
        assert await store.get_state("doc") == ("blob", b"new")
    finally:
        await store.close()


async def test_close_lets_the_writes_handed_over_finish_and_refuses_later_ones(store_url: str) -> None:
    owner = Identity.generate().peer_id
    store = await Store.open(store_url, owner)
    late = asyncio.create_task(store.put_state("late", "blob", b"x"))
    await asyncio.sleep(0)  # handed to the writer thread, not yet committed
    await store.close()
    await asyncio.wait_for(late, WAIT_S)
    with pytest.raises(StoreUnavailableError):
        await store.put_state("after", "blob", b"y")
    store = await Store.open(store_url, owner)
    try:
        assert await store.get_state("late") == ("blob", b"x")
        assert await store.get_state("after") is None
    finally:
        await store.close()


async def test_a_postgresql_connection_lost_mid_write_is_unavailable_then_reconnects(pg_url: str) -> None:
    store = await Store.open(pg_url, Identity.generate().peer_id)
    try:
        await store.put_state("kept", "blob", b"k")
        with held(store, "crdt_state") as (reached, release, connections):
            write = asyncio.create_task(store.put_state("lost", "blob", b"l"))
            assert await asyncio.to_thread(reached.wait, WAIT_S)
            with psycopg.connect(pg_url, autocommit=True) as admin:
                admin.execute("SELECT pg_terminate_backend(%s)", (connections[0].info.backend_pid,))
            release.set()
            with pytest.raises(StoreUnavailableError, match="unavailable"):
                await asyncio.wait_for(write, WAIT_S)
        assert store.storage == "unavailable"
        await store.put_state("after", "blob", b"a")  # a new connection, no restart
        assert store.storage == "ok"
        assert [await store.get_state(n) for n in ("kept", "lost", "after")] == [
            ("blob", b"k"),
            None,
            ("blob", b"a"),
        ]
    finally:
        await store.close()


async def test_a_connection_the_server_dropped_while_idle_is_checked_before_use(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The writer keeps its connection between transactions; after a quiet spell it goes back to the
    pool, whose pre-ping finds a connection the server dropped meanwhile (a restart, an idle timeout)
    and replaces it, so no write fails for it."""
    store = await Store.open(pg_url, Identity.generate().peer_id)
    try:
        with held(store, "crdt_state") as (reached, release, connections):
            release.set()
            await store.put_state("before", "blob", b"b")
            assert reached.is_set()
        with psycopg.connect(pg_url, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (connections[0].info.backend_pid,))
        monkeypatch.setattr(store_module, "HELD_IDLE_S", 0.0)  # the quiet spell, without waiting it out
        await store.put_state("after", "blob", b"a")
        assert store.storage == "ok"
        assert await store.get_state("after") == ("blob", b"a")
    finally:
        await store.close()


IMPORTS = """
import asyncio, sys
from f0mesh.store import Store

async def main(url):
    store = await Store.open(url, "owner")
    await store.commit_gossip([{"id": "m", "origin": "o", "seq": 1, "topic": "t", "payload": 1, "hops": 0,
        "hlc": "1", "created_at": 1.0, "received_at": 1.0, "raw": b"r"}], [])
    assert [m["id"] for m in await store.list_messages(since=0)] == ["m"]
    await store.close()

asyncio.run(main(sys.argv[1]))
forbidden = ("sqlalchemy.orm", "sqlalchemy.ext", "greenlet", "aiosqlite", "asyncpg")
print(",".join(sorted(m for m in sys.modules if m.startswith(forbidden))))
"""


def test_a_store_imports_no_orm_and_no_asyncio_layer(store_url: str) -> None:
    """The whole node is checked on SQLite in tests/test_packaging.py; here each backend's driver."""
    r = subprocess.run(
        [sys.executable, "-c", IMPORTS, store_url], capture_output=True, text=True, timeout=60, check=False
    )
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.strip() == "", f"imported: {r.stdout.strip()}"
