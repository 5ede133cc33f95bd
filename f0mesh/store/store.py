"""The Store: every table access of a node, scoped to its own PeerId.

SQLAlchemy Core on a synchronous engine (the stdlib's sqlite3, or psycopg 3 for PostgreSQL), run on
the store's own threads: each transaction is one plain function and one handoff from the event loop.
The asyncio extension this replaces made a handoff per statement through a greenlet bridge, and
imported the ORM for its session: 6.5 MB of every node's memory (issue #25).

Every write is one transaction, so a crash never leaves half a batch behind; SQLite runs in WAL mode
so readers (the API) never block the writer.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import operator
import os
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from f0mesh.datadir import private_file
from f0mesh.errors import ConfigError, StorageFullError, StoreUnavailableError
from f0mesh.store import schema as t
from f0mesh.store.migrations import migrate
from f0mesh.store.url import redact, to_engine_url

log = logging.getLogger("f0mesh.store")

T = TypeVar("T")

# How long close() waits for the transactions already handed to the store's threads. Each is bounded
# on its own: SQLite's busy timeout, PostgreSQL's statement timeout and TCP user timeout (all 30 s).
CLOSE_TIMEOUT_S = 35.0
# PostgreSQL: a statement, or a connection whose server went silent, fails after this long instead
# of holding the writer thread (asyncpg's command_timeout did this on the client).
PG_TIMEOUT_MS = 30_000
# A store thread's connection unused this long is returned to the pool and checked out (and pinged) anew.
HELD_IDLE_S = 5.0
# SQLite's page cache, per connection (KiB): the writer and the reader each keep their own, and its
# default (2 MiB) fills as a long-running node's tables grow. The hot pages (the tail of each index
# new rows land in, the tables' upper levels) fit several times over; the rest stays in the kernel's
# page cache (issue #25).
SQLITE_CACHE_KIB = 1024


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    # Under CPU starvation another process (an operator's sqlite3 shell, a backup) can hold the file
    # lock for seconds; the writer should wait for it rather than fail.
    cur.execute("PRAGMA busy_timeout=30000")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute(f"PRAGMA cache_size=-{SQLITE_CACHE_KIB}")
    cur.close()


# SQLite result codes and PostgreSQL SQLSTATE classes that say the store could not write now, not that the
# statement was wrong: connection, resources, operator intervention (a statement timeout), system I/O.
_SQLITE_UNAVAILABLE = (
    "SQLITE_IOERR",
    "SQLITE_BUSY",
    "SQLITE_LOCKED",
    "SQLITE_CANTOPEN",
    "SQLITE_READONLY",
    "SQLITE_PROTOCOL",
    "SQLITE_NOMEM",
)
_PG_UNAVAILABLE = ("08", "53", "57", "58")
_PG_DISK_FULL = "53100"
# SQLite reports a write that ran out of space in its shared-memory index or journal as an I/O error;
# with less than this left on the database's filesystem, the I/O error is counted as a full disk.
LOW_SPACE_BYTES = 1 << 20


def storage_error(exc: BaseException, db_path: Path | None = None) -> StoreUnavailableError | None:
    """The typed error for a write the store did not take, or None when exc is a bug (a bad statement).

    The one place that knows how each backend says "disk full" (SQLITE_FULL, SQLSTATE 53100) and "not
    now" (I/O error, busy, lost connection); the API answers these 507 and 503. psycopg says a lost or
    refused connection with an OperationalError that carries no SQLSTATE (the server never answered).
    """
    orig = getattr(exc, "orig", None) or exc
    reason = (str(orig).strip().splitlines() or [type(orig).__name__])[0][:200]
    name = getattr(orig, "sqlite_errorname", None) or ""
    sqlstate = getattr(orig, "sqlstate", None) or ""
    if (
        name == "SQLITE_FULL"
        or sqlstate == _PG_DISK_FULL
        or (name.startswith("SQLITE_IOERR") and db_path is not None and _low_space(db_path))
    ):
        return StorageFullError(f"not stored: the store's disk is full ({reason}); free space and retry")
    if (
        name.startswith(_SQLITE_UNAVAILABLE)
        or (isinstance(sqlstate, str) and sqlstate[:2] in _PG_UNAVAILABLE)
        or (isinstance(exc, OperationalError) and not name and not sqlstate)
        or isinstance(exc, PoolTimeoutError | InterfaceError)
        or isinstance(orig, OSError)  # TimeoutError too: a connection refused, a socket gone
        or (isinstance(exc, DBAPIError) and exc.connection_invalidated)
    ):
        return StoreUnavailableError(f"not stored: the store is unavailable ({reason}); retry later")
    return None


def _low_space(db_path: Path) -> bool:
    try:
        st = os.statvfs(db_path.parent)
    except OSError:
        return False
    return st.f_bavail * st.f_frsize < LOW_SPACE_BYTES


def _insert(engine: sa.Engine, table: sa.Table) -> Any:
    """INSERT in the backend's own dialect, which has ON CONFLICT."""
    return _dialect_insert(engine.dialect.name, table)


def _dialect_insert(dialect: str, table: sa.Table) -> Any:
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert(table)


@functools.lru_cache(maxsize=32)
def _peer_upsert_shape(dialect: str, given: tuple[bool, bool, bool, bool]) -> Any:
    """The mesh_peers upsert that updates only the fields given (url, trust, location, last_seen)."""
    stmt = _dialect_insert(dialect, t.mesh_peers)
    url, trust, location, last_seen = given
    update: dict[str, Any] = {}
    if url:
        update["url"] = stmt.excluded.url
    if trust:
        update["trust"] = stmt.excluded.trust
    if location:
        update["location"] = stmt.excluded.location
    if last_seen:
        update["last_seen"] = _last_seen_forward(stmt)
    if update:
        return stmt.on_conflict_do_update(index_elements=["owner", "peer_id"], set_=update)
    return stmt.on_conflict_do_nothing()


def _last_seen_forward(stmt: Any) -> Any:
    """ON CONFLICT value of mesh_peers.last_seen: the newer of the stored and the offered one."""
    c = t.mesh_peers.c
    return sa.case(
        (sa.or_(c.last_seen.is_(None), stmt.excluded.last_seen > c.last_seen), stmt.excluded.last_seen),
        else_=c.last_seen,
    )


def _upsert(engine: sa.Engine, table: sa.Table, columns: Iterable[str], keys: tuple[str, ...]) -> Any:
    """INSERT .. ON CONFLICT DO UPDATE of ``columns``, executed with the values as parameters."""
    return _upsert_shape(engine.dialect.name, table, tuple(columns), keys)


@functools.lru_cache(maxsize=64)
def _upsert_shape(dialect: str, table: sa.Table, columns: tuple[str, ...], keys: tuple[str, ...]) -> Any:
    """One statement per shape, built once: building ``.values(**row)`` with its ``excluded`` proxies
    for every write was ~300 us of a one-row transaction's ~350, and left cyclic garbage behind."""
    stmt = _dialect_insert(dialect, table)
    update = {k: stmt.excluded[k] for k in columns if k not in keys}
    return stmt.on_conflict_do_update(index_elements=list(keys), set_=update)


def _insert_ignore(engine: sa.Engine, table: sa.Table) -> Any:
    """INSERT .. ON CONFLICT DO NOTHING, executed with a list of rows: one cached compiled statement,
    where ``.values(rows)`` compiled a new multi-row statement for every batch (~20 % of a gossip
    receiver's CPU)."""
    return _insert(engine, table).on_conflict_do_nothing()


class _DriverInsert:
    """An INSERT compiled once for the backend, executed as driver SQL with plain tuples.

    The gossip rows hold only str, int, float, bytes and None, which sqlite3 and psycopg take as
    they are; SQLAlchemy's per-row parameter processing (bind processors, ``construct_params``)
    was ~30 us per message and audit row on the gossip hot path, more than the INSERT itself.
    """

    def __init__(self, engine: sa.Engine, stmt: Any, columns: Sequence[str]) -> None:
        dialect = engine.dialect
        if not dialect.positional:  # psycopg's default is named (%(x)s); tuples need its %s
            dialect = type(dialect)(paramstyle="format")
        compiled = stmt.compile(dialect=dialect, column_keys=list(columns))
        if compiled.positiontup is None:
            raise ConfigError(f"store dialect {engine.dialect.name} has no positional parameters")
        self.sql = compiled.string
        self.order = tuple(compiled.positiontup)

    def write(self, conn: sa.Connection, rows: list[tuple[Any, ...]], fields: Sequence[str]) -> None:
        """Rows as tuples in ``fields`` order: no dict per row on the gossip hot path."""
        pick = _picker(self.order, fields)
        conn.exec_driver_sql(self.sql, [pick(row) for row in rows])


@functools.lru_cache(maxsize=16)
def _picker(order: tuple[str, ...], fields: Sequence[str]) -> Callable[[tuple[Any, ...]], tuple[Any, ...]]:
    """Reorders a tuple in ``fields`` order into ``order`` (every column of it must be a field)."""
    if len(order) < 2:
        raise ValueError("a picker needs two columns or more (itemgetter of one gives no tuple)")
    index = {name: i for i, name in enumerate(fields)}
    return operator.itemgetter(*(index[name] for name in order))


# Below this many rows an executemany costs less than COPY's extra statements.
COPY_MIN_ROWS = 8


class _CopyInsert:
    """PostgreSQL: a batch of rows by COPY, which costs psycopg ~11 us of client CPU per row at 64
    rows where its executemany costs ~65. COPY has no ON CONFLICT, so rows that may already be
    stored go through a temporary table (one per session, emptied at each commit) and one
    INSERT .. SELECT .. ON CONFLICT DO NOTHING. Small batches take the executemany."""

    def __init__(
        self, small: _DriverInsert, table: sa.Table, columns: Sequence[str], ignore_conflicts: bool
    ) -> None:
        self.small = small
        self.order = tuple(columns)
        cols = ", ".join(f'"{c}"' for c in columns)
        target = f'"{table.name}"'
        self.stage: str | None = None
        self.insert: str | None = None
        if ignore_conflicts:
            stage = f'"f0mesh_stage_{table.name}"'
            self.stage = f"CREATE TEMP TABLE IF NOT EXISTS {stage} (LIKE {target}) ON COMMIT DELETE ROWS"
            self.insert = f"INSERT INTO {target} ({cols}) SELECT {cols} FROM {stage} ON CONFLICT DO NOTHING"
            target = stage
        self.copy = f"COPY {target} ({cols}) FROM STDIN"

    def write(self, conn: sa.Connection, rows: list[tuple[Any, ...]], fields: Sequence[str]) -> None:
        if len(rows) < COPY_MIN_ROWS:
            self.small.write(conn, rows, fields)
            return
        pick = _picker(self.order, fields)
        tuples = [pick(row) for row in rows]
        cursor = conn.connection.cursor()
        try:
            if self.stage is not None:
                cursor.execute(self.stage)
            with cursor.copy(self.copy) as copy:
                for row in tuples:
                    copy.write_row(row)
            if self.insert is not None:
                cursor.execute(self.insert)
        finally:
            cursor.close()


# A link's QoS figures by owner and link_id: the SET clause is the parameters' column keys, so this one
# statement serves every shape, compiled once per shape (the sampler writes each open link every round).
_LINK_UPDATE = sa.update(t.mesh_links).where(
    t.mesh_links.c.owner == sa.bindparam("_owner"), t.mesh_links.c.link_id == sa.bindparam("_link")
)


# A gossip message row and an audit row, as commit_gossip_values takes them
GOSSIP_MESSAGE_FIELDS = (
    "id", "origin", "seq", "topic", "payload", "hops", "hlc", "created_at", "received_at", "raw"
)  # fmt: skip
GOSSIP_AUDIT_FIELDS = ("at", "event", "message_id", "peer_id", "reason")
# ... and as the writer thread extends them for the insert
# (the payload value itself, field 4, is not a column: its JSON text or bytes are)
_MESSAGE_ROW = (
    *GOSSIP_MESSAGE_FIELDS[:4], "value", *GOSSIP_MESSAGE_FIELDS[5:], "owner", "n", "payload", "payload_bin"
)  # fmt: skip
_AUDIT_ROW = (*GOSSIP_AUDIT_FIELDS, "owner")


def _payload_values(payload: Any) -> tuple[str, bytes | None]:
    """The payload and payload_bin columns: bytes as they are, anything else as compact JSON."""
    if isinstance(payload, bytes):
        return "null", payload
    return json.dumps(payload, separators=(",", ":")), None


def _message_row(row: Any) -> dict[str, Any]:
    """A stored message with its payload decoded: bytes come back as bytes."""
    out = {k: v for k, v in dict(row).items() if k != "payload_bin"}
    blob = row["payload_bin"]
    out["payload"] = bytes(blob) if blob is not None else json.loads(row["payload"])
    return out


def _engine(store_url: str) -> sa.Engine:
    url = to_engine_url(store_url)
    kwargs: dict[str, Any] = {"pool_size": 2, "max_overflow": 2}  # a connection per store thread
    if url.drivername.startswith("sqlite"):
        if url.database != ":memory:":
            try:
                private_file(Path(url.database or ""))
            except OSError as exc:
                raise ConfigError(f"cannot open store {redact(store_url)}: {exc.strerror or exc}") from exc
        kwargs["connect_args"] = {"timeout": 10}
    else:
        kwargs["pool_pre_ping"] = True
        kwargs["connect_args"] = {
            "connect_timeout": 10,
            "options": f"-c statement_timeout={PG_TIMEOUT_MS}",
            "tcp_user_timeout": PG_TIMEOUT_MS,
            "keepalives_idle": 10,
            "keepalives_interval": 5,
            "keepalives_count": 3,
        }
    try:
        engine = sa.create_engine(url, **kwargs)
    except ImportError as exc:  # psycopg comes with the postgres extra only
        raise ConfigError(
            f"--store {redact(store_url)} needs {exc.name}: pip install 'f0mesh[postgres]'"
        ) from exc
    if url.drivername.startswith("sqlite"):
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def _report_unheard(future: Future[Any]) -> None:
    """A transaction whose caller was cancelled while its thread ran it: nobody else hears how it ended."""
    if not future.cancelled() and (exc := future.exception()) is not None:
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        log.warning("a store transaction whose caller had gone failed: %s", reason)


class Store:
    """Async access to a node's tables. Open with ``await Store.open(url, owner)``.

    Writes run on one writer thread, reads on one reader thread, each a whole transaction per handoff.
    One writer keeps this node's write transactions in the order they were handed over: SQLite has a
    single writer anyway, and queueing them here replaced a crowd of connections polling its file lock,
    which under CPU starvation let some wait past any busy timeout ("database is locked"). The reader
    keeps the API and gossip's lookups from queueing behind a long write (a prune, a large batch).
    """

    def __init__(self, engine: sa.Engine, owner: str) -> None:
        self.engine = engine
        self.owner = owner
        sqlite = engine.dialect.name == "sqlite"
        database = engine.url.database
        self._db_path = Path(database) if sqlite and database and database != ":memory:" else None
        self._driver_error: type[Exception] = engine.dialect.loaded_dbapi.Error
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="f0mesh-store-write")
        # an in-memory SQLite database is one connection's: its reads share the writer's thread
        self._reader = (
            ThreadPoolExecutor(1, thread_name_prefix="f0mesh-store-read")
            if not sqlite or self._db_path is not None
            else self._writer
        )
        self._closed = False
        # each busy store thread keeps its connection checked out (thread ident -> connection, last
        # use): a pool checkout and the reset on return cost more than a small transaction's own work
        self._held: dict[int, tuple[sa.Connection, float]] = {}
        self._gossip_n: int | None = None  # the newest n handed out, once read from the store
        self._can_stage = False  # PostgreSQL: may this role create the COPY path's temporary table
        # how the last write went: "ok", "full" (storage_full) or "unavailable"; /healthz reports it
        self.storage = "ok"

    @classmethod
    async def open(cls, store_url: str, owner: str) -> Store:
        """Connect, migrate, and return a Store; an unreachable or bad URL is a one-line ConfigError."""
        store = cls(_engine(store_url), owner)
        try:
            await store._submit(store._writer, store._migrate)
        except (OperationalError, DBAPIError, OSError) as exc:
            await store.close()
            reason = str(getattr(exc, "orig", exc) or exc).splitlines()[0]
            raise ConfigError(f"cannot open store {redact(store_url)}: {reason}") from exc
        except BaseException:
            await store.close()
            raise
        return store

    def _migrate(self) -> None:
        with self.engine.begin() as conn:
            migrate(conn)
            if self.engine.dialect.name == "postgresql":
                query = "SELECT has_database_privilege(current_database(), 'TEMPORARY')"
                self._can_stage = bool(conn.exec_driver_sql(query).scalar())

    async def close(self) -> None:
        """Wait, up to CLOSE_TIMEOUT_S, for the transactions already handed over, then dispose the
        engine on the writer thread; calls after this raise StoreUnavailableError."""
        if self._closed:
            return
        self._closed = True
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(CLOSE_TIMEOUT_S):
                await loop.run_in_executor(self._reader, self._release)  # after the reads handed over
                await loop.run_in_executor(self._writer, self._release)  # after the last write
                await loop.run_in_executor(self._writer, self.engine.dispose)
        except TimeoutError:
            log.warning("store closed with a transaction still running after %.0f s", CLOSE_TIMEOUT_S)
        finally:
            self._reader.shutdown(wait=False)
            self._writer.shutdown(wait=False)

    @property
    def backend(self) -> str:
        return self.engine.dialect.name

    # -- the asyncio adapter ---------------------------------------------------------------

    async def _submit(self, executor: ThreadPoolExecutor, work: Callable[..., T], *args: Any) -> T:
        if self._closed:
            raise StoreUnavailableError("not stored: the store is closed")
        future = executor.submit(work, *args)
        try:
            return await asyncio.wrap_future(future)
        except asyncio.CancelledError:
            future.add_done_callback(_report_unheard)  # its caller is gone: a failure is logged here
            raise

    async def _write(self, work: Callable[[sa.Connection], T]) -> T:
        """``work(conn)`` as one transaction on the writer thread.

        A write the store did not take raises StorageFullError or StoreUnavailableError (see
        storage_error); nothing of the transaction is kept, so the caller must not acknowledge it.
        A caller cancelled while it waits is never told its data was stored. The transaction is not
        cut short by that: one the thread has begun runs to its commit or rollback, so what the
        cancelled caller handed over is stored whole or not at all; one still queued when the
        cancellation reaches the executor never runs.
        """
        return await self._submit(self._writer, self._transact, work)

    def _connection(self) -> sa.Connection:
        """This store thread's connection. One idle for HELD_IDLE_S goes back to the pool first, so
        the pool's pre-ping checks it after a quiet spell (a restarted PostgreSQL) before it is used."""
        ident, now = threading.get_ident(), time.monotonic()
        held = self._held.get(ident)
        if held is not None and now - held[1] > HELD_IDLE_S:
            self._release()
            held = None
        conn = held[0] if held is not None else self.engine.connect()
        self._held[ident] = (conn, now)
        return conn

    def _release(self) -> None:
        """Give this thread's connection back to the pool: after a failure, the next transaction
        starts on a fresh connection (one the server dropped is invalidated by the pool)."""
        held = self._held.pop(threading.get_ident(), None)
        if held is not None:
            with contextlib.suppress(DBAPIError, self._driver_error):
                held[0].close()

    def _transact(self, work: Callable[[sa.Connection], T]) -> T:
        """On the writer thread: begin, work, commit; a failure rolls everything back."""
        try:
            conn = self._connection()
            with conn.begin():
                result = work(conn)
        except (DBAPIError, PoolTimeoutError, OSError, self._driver_error) as exc:
            self._release()
            error = storage_error(exc, self._db_path)
            if error is None:
                raise
            self.storage = "full" if isinstance(error, StorageFullError) else "unavailable"
            raise error from exc
        except BaseException:
            self._release()
            raise
        self.storage = "ok"
        return result

    async def _read(self, work: Callable[[sa.Connection], T]) -> T:
        """``work(conn)`` on the reader thread; a read sees only committed writes."""
        return await self._submit(self._reader, self._query, work)

    def _query(self, work: Callable[[sa.Connection], T]) -> T:
        """On the reader thread, in a transaction of its own, so each read sees the latest commits."""
        try:
            conn = self._connection()
            with conn.begin():
                return work(conn)
        except BaseException:
            self._release()
            raise

    async def schema_version(self) -> int:
        q = sa.select(sa.func.max(t.schema_version.c.version))
        return await self._read(lambda conn: conn.execute(q).scalar() or 0)

    # -- peers -----------------------------------------------------------------------------

    def _peer_upsert(
        self,
        peer_id: str,
        url: str | None = None,
        last_seen: float | None = None,
        trust: float | None = None,
        location: str | None = None,
    ) -> tuple[Any, dict[str, Any]]:
        """INSERT … ON CONFLICT that updates only the fields given, so concurrent writers (peer
        exchange, link events, the block list) never overwrite each other's columns."""
        values: dict[str, Any] = {
            "owner": self.owner,
            "peer_id": peer_id,
            "url": url,
            "trust": trust,
            "first_seen": time.time(),
            "last_seen": last_seen,
            "blocked": False,
            "location": location,
        }
        given = (url is not None, trust is not None, location is not None, last_seen is not None)
        return _peer_upsert_shape(self.engine.dialect.name, given), values

    def _peer_query(self, peer_id: str) -> Any:
        c = t.mesh_peers.c
        return sa.select(t.mesh_peers).where(c.owner == self.owner, c.peer_id == peer_id)

    async def upsert_peer(
        self,
        peer_id: str,
        *,
        url: str | None = None,
        last_seen: float | None = None,
        trust: float | None = None,
        location: str | None = None,
    ) -> dict[str, Any]:
        upsert, values = self._peer_upsert(peer_id, url, last_seen, trust, location)

        def work(conn: sa.Connection) -> dict[str, Any]:
            conn.execute(upsert, values)
            row = conn.execute(self._peer_query(peer_id)).mappings().first()
            return dict(row) if row else {}

        return await self._write(work)

    async def upsert_peers(self, peers: Iterable[dict[str, Any]]) -> None:
        """Many peers learned at once (peer exchange, the replicated registry): one statement for all,
        where a missing url keeps the stored one and last_seen only moves forward."""
        now = time.time()
        rows = [
            {
                "owner": self.owner,
                "peer_id": p["peer_id"],
                "url": p.get("url"),
                "trust": None,
                "first_seen": now,
                "last_seen": p.get("last_seen"),
                "blocked": False,
                "location": None,
            }
            for p in peers
        ]
        if not rows:
            return
        stmt = self._peers_merge
        await self._write(lambda conn: conn.execute(stmt, rows))

    @functools.cached_property
    def _peers_merge(self) -> Any:
        """Peers learned in bulk: a missing url keeps the stored one, last_seen only moves forward."""
        stmt = _insert(self.engine, t.mesh_peers)
        return stmt.on_conflict_do_update(
            index_elements=["owner", "peer_id"],
            set_={
                "url": sa.func.coalesce(stmt.excluded.url, t.mesh_peers.c.url),
                "last_seen": _last_seen_forward(stmt),
            },
        )

    async def set_peer_trust(self, scores: dict[str, float]) -> None:
        """Write the current global trust scores onto known peers in one transaction."""
        if not scores:
            return
        c = t.mesh_peers.c
        stmt = (
            sa.update(t.mesh_peers)
            .where(c.owner == sa.bindparam("o"), c.peer_id == sa.bindparam("p"))
            .values(trust=sa.bindparam("s"))
        )
        rows = [{"o": self.owner, "p": p, "s": score} for p, score in scores.items()]
        await self._write(lambda conn: conn.execute(stmt, rows))

    async def set_peer_blocked(self, peer_id: str, blocked: bool) -> None:
        c = t.mesh_peers.c
        upsert, values = self._peer_upsert(peer_id)
        update = (
            sa.update(t.mesh_peers).where(c.owner == self.owner, c.peer_id == peer_id).values(blocked=blocked)
        )

        def work(conn: sa.Connection) -> None:
            conn.execute(upsert, values)
            conn.execute(update)

        await self._write(work)

    async def get_peer(self, peer_id: str) -> dict[str, Any] | None:
        q = self._peer_query(peer_id)

        def work(conn: sa.Connection) -> dict[str, Any] | None:
            row = conn.execute(q).mappings().first()
            return dict(row) if row else None

        return await self._read(work)

    async def list_peers(self, limit: int = 1000) -> list[dict[str, Any]]:
        c = t.mesh_peers.c
        q = (
            sa.select(t.mesh_peers)
            .where(c.owner == self.owner)
            .order_by(c.last_seen.desc().nulls_last(), c.peer_id)
            .limit(limit)
        )
        return await self._read(lambda conn: [dict(r) for r in conn.execute(q).mappings()])

    async def delete_peer(self, peer_id: str) -> bool:
        c = t.mesh_peers.c
        stmt = sa.delete(t.mesh_peers).where(c.owner == self.owner, c.peer_id == peer_id)
        return await self._write(lambda conn: conn.execute(stmt).rowcount > 0)

    async def delete_peers(self, peer_ids: Sequence[str]) -> int:
        """Forget peers in one transaction (strangers the node collected); returns the rows removed."""
        if not peer_ids:
            return 0
        c = t.mesh_peers.c
        stmt = sa.delete(t.mesh_peers).where(c.owner == self.owner, c.peer_id.in_(list(peer_ids)))
        return await self._write(lambda conn: conn.execute(stmt).rowcount)

    # -- links -----------------------------------------------------------------------------

    async def prune_links(self, *, ended_before: float, keep: int) -> int:
        """Delete rows of links that failed or closed before ``ended_before``, and beyond the newest
        ``keep`` ended ones: a flood of failed offers leaves a bounded trail, recent failures stay visible."""
        c = t.mesh_links.c
        ended = sa.and_(c.owner == self.owner, c.state.in_(("failed", "closed")))
        newest = sa.select(c.link_id).where(ended).order_by(c.updated_at.desc()).limit(keep)
        stmt = sa.delete(t.mesh_links).where(
            ended, sa.or_(c.updated_at < ended_before, c.link_id.not_in(newest.scalar_subquery()))
        )
        return await self._write(lambda conn: conn.execute(stmt).rowcount)

    async def upsert_link(self, link: dict[str, Any]) -> None:
        values = {"owner": self.owner, "updated_at": time.time(), **link}
        stmt = _upsert(self.engine, t.mesh_links, values, ("owner", "link_id"))
        await self._write(lambda conn: conn.execute(stmt, values))

    async def list_links(self, *, peer_id: str | None = None, limit: int = 1000) -> list[dict[str, Any]]:
        q = sa.select(t.mesh_links).where(t.mesh_links.c.owner == self.owner)
        if peer_id is not None:
            q = q.where(t.mesh_links.c.peer_id == peer_id)
        q = q.order_by(t.mesh_links.c.updated_at.desc()).limit(limit)
        return await self._read(lambda conn: [dict(r) for r in conn.execute(q).mappings()])

    async def close_stale_links(self, reason: str) -> int:
        """At start-up no link of a previous run can still be live: mark them closed."""
        c = t.mesh_links.c
        stmt = (
            sa.update(t.mesh_links)
            .where(c.owner == self.owner, c.state.in_(("connecting", "open")))
            .values(state="closed", closed_at=time.time(), reason=reason, updated_at=time.time())
        )
        return await self._write(lambda conn: conn.execute(stmt).rowcount)

    # -- QoS samples -----------------------------------------------------------------------

    async def add_samples(
        self, samples: Iterable[dict[str, Any]], links: Iterable[dict[str, Any]] = ()
    ) -> None:
        """One sampling round: the time-series rows and the links' current figures, atomically."""
        rows = [{"owner": self.owner, **s} for s in samples]
        now = time.time()
        updates = [
            {k: v for k, v in link.items() if k != "link_id"}
            | {"updated_at": now, "_owner": self.owner, "_link": link["link_id"]}
            for link in links
        ]

        def work(conn: sa.Connection) -> None:
            if rows:
                conn.execute(t.link_samples.insert(), rows)
            for values in updates:
                conn.execute(_LINK_UPDATE, values)

        await self._write(work)

    async def list_samples(
        self, *, link_id: str | None = None, peer_id: str | None = None, since: float = 0.0, limit: int = 1000
    ) -> list[dict[str, Any]]:
        q = sa.select(t.link_samples).where(
            t.link_samples.c.owner == self.owner, t.link_samples.c.at >= since
        )
        if link_id is not None:
            q = q.where(t.link_samples.c.link_id == link_id)
        if peer_id is not None:
            q = q.where(t.link_samples.c.peer_id == peer_id)
        q = q.order_by(t.link_samples.c.at.desc()).limit(limit)
        rows = await self._read(lambda conn: conn.execute(q).mappings().all())
        return [dict(r) for r in reversed(rows)]

    # -- gossip ----------------------------------------------------------------------------

    async def commit_gossip(
        self, messages: Sequence[dict[str, Any]], audit: Sequence[dict[str, Any]]
    ) -> None:
        """commit_gossip_values() for rows as dicts keyed by GOSSIP_MESSAGE_FIELDS and
        GOSSIP_AUDIT_FIELDS; a key a row lacks is NULL."""
        await self.commit_gossip_values(
            [tuple(m.get(k) for k in GOSSIP_MESSAGE_FIELDS) for m in messages],
            [tuple(a.get(k) for k in GOSSIP_AUDIT_FIELDS) for a in audit],
        )

    async def commit_gossip_values(
        self, messages: Sequence[Sequence[Any]], audit: Sequence[Sequence[Any]]
    ) -> None:
        """Message rows and their audit rows in one transaction: acks wait for this commit. Rows are
        tuples in GOSSIP_MESSAGE_FIELDS and GOSSIP_AUDIT_FIELDS order (the gossip engine's own
        StoredMessage and AuditRow are), so no row is built twice on the hot path.

        Each message gets the owner's next ``n``, counted here (one node per owner) on the writer
        thread, so n orders messages as they became visible. A message already stored is skipped by
        the insert and leaves a gap in n, which orders but does not count.
        """
        unique = list({m[0]: m for m in messages}.values())
        await self._submit(self._writer, self._commit_gossip, unique, audit)

    def _commit_gossip(self, unique: list[Sequence[Any]], audit: Sequence[Sequence[Any]]) -> None:
        """On the writer thread. The count moves on here, once committed, and not in the awaiting
        caller, which may have been cancelled meanwhile: the next batch never reuses an n."""
        owner = self.owner

        def work(conn: sa.Connection) -> int:
            last = self._gossip_n if self._gossip_n is not None else self._stored_last_n(conn)
            if unique:
                rows = [(*m, owner, last + i, *_payload_values(m[4])) for i, m in enumerate(unique, start=1)]
                self._gossip_insert.write(conn, rows, _MESSAGE_ROW)
            if audit:
                # str(): an event or reason may be a str subclass (an enum), which drivers need not take
                rows = [
                    (at, str(event), message_id, peer_id, None if reason is None else str(reason), owner)
                    for at, event, message_id, peer_id, reason in audit
                ]
                self._audit_insert.write(conn, rows, _AUDIT_ROW)
            return last + len(unique)

        self._gossip_n = self._transact(work)

    @functools.cached_property
    def _gossip_insert(self) -> _DriverInsert | _CopyInsert:
        columns = [c.name for c in t.gossip_messages.columns]
        small = _DriverInsert(self.engine, _insert_ignore(self.engine, t.gossip_messages), columns)
        if not self._can_stage:
            return small
        return _CopyInsert(small, t.gossip_messages, columns, ignore_conflicts=True)

    @functools.cached_property
    def _audit_insert(self) -> _DriverInsert | _CopyInsert:
        columns = [c.name for c in t.mesh_gossip_audit.columns if c.name != "id"]
        small = _DriverInsert(self.engine, sa.insert(t.mesh_gossip_audit), columns)
        if self.engine.dialect.name != "postgresql":
            return small
        return _CopyInsert(small, t.mesh_gossip_audit, columns, ignore_conflicts=False)

    @functools.cached_property
    def _sequence_upsert(self) -> Any:
        """Executed with parameters, so it is compiled once."""
        stmt = _insert(self.engine, t.gossip_sequence)
        return stmt.on_conflict_do_update(index_elements=["owner"], set_={"last_n": stmt.excluded.last_n})

    def _stored_last_n(self, conn: sa.Connection) -> int:
        """The newest n: of the rows, or saved in gossip_sequence by a prune that deleted them."""
        c = t.gossip_messages.c
        rows = conn.execute(sa.select(sa.func.max(c.n)).where(c.owner == self.owner)).scalar()
        q = sa.select(t.gossip_sequence.c.last_n).where(t.gossip_sequence.c.owner == self.owner)
        saved = conn.execute(q).scalar()
        return max(rows or 0, saved or 0)

    async def last_message_n(self) -> int:
        """The n of the newest stored message (0 if none ever was): where a live-only stream starts."""
        if self._gossip_n is not None:
            return self._gossip_n
        return await self._read(self._stored_last_n)

    async def list_messages(
        self, *, topic: str | None = None, limit: int = 100, since: int | None = None
    ) -> list[dict[str, Any]]:
        """Newest first; with ``since``, the messages after that n in storing order (a cursor page)."""
        c = t.gossip_messages.c
        q = sa.select(
            c.n, c.id, c.origin, c.seq, c.topic, c.payload, c.payload_bin, c.hops, c.hlc, c.received_at
        ).where(c.owner == self.owner)
        if topic:
            q = q.where(c.topic == topic)
        newest_first = q.order_by(c.received_at.desc(), c.id)
        q = (newest_first if since is None else q.where(c.n > since).order_by(c.n)).limit(limit)
        return await self._read(lambda conn: [_message_row(r) for r in conn.execute(q).mappings()])

    async def count_messages(self, *, topic: str | None, after: int, upto: int) -> int:
        """Messages with after < n <= upto: what a stream skipped when it jumped ahead."""
        c = t.gossip_messages.c
        q = sa.select(sa.func.count()).where(c.owner == self.owner, c.n > after, c.n <= upto)
        if topic:
            q = q.where(c.topic == topic)
        return await self._read(lambda conn: conn.execute(q).scalar() or 0)

    async def message_ids_since(self, created_after: float, limit: int = 10000) -> list[str]:
        """Ids of messages created after a time, newest first (repair digests)."""
        c = t.gossip_messages.c
        q = (
            sa.select(c.id)
            .where(c.owner == self.owner, c.created_at > created_after)
            .order_by(c.created_at.desc())
            .limit(limit)
        )
        return await self._read(lambda conn: list(conn.execute(q).scalars()))

    async def get_raw_messages(self, ids: Sequence[str]) -> dict[str, bytes]:
        if not ids:
            return {}
        c = t.gossip_messages.c
        q = sa.select(c.id, c.raw).where(c.owner == self.owner, c.id.in_(list(ids)))
        return await self._read(lambda conn: {r.id: bytes(r.raw) for r in conn.execute(q)})

    async def has_messages(self, ids: Sequence[str]) -> set[str]:
        if not ids:
            return set()
        c = t.gossip_messages.c
        q = sa.select(c.id).where(c.owner == self.owner, c.id.in_(list(ids)))
        return await self._read(lambda conn: set(conn.execute(q).scalars()))

    async def max_seq(self, origin: str) -> int:
        c = t.gossip_messages.c
        q = sa.select(sa.func.max(c.seq)).where(c.owner == self.owner, c.origin == origin)
        return await self._read(lambda conn: conn.execute(q).scalar() or 0)

    async def list_audit(self, *, limit: int = 100, event_name: str | None = None) -> list[dict[str, Any]]:
        c = t.mesh_gossip_audit.c
        q = sa.select(c.at, c.event, c.message_id, c.peer_id, c.reason).where(c.owner == self.owner)
        if event_name:
            q = q.where(c.event == event_name)
        q = q.order_by(c.id.desc()).limit(limit)
        return await self._read(lambda conn: [dict(r) for r in conn.execute(q).mappings()])

    # -- CRDT state ------------------------------------------------------------------------

    async def put_state(self, name: str, kind: str, data: bytes) -> None:
        values = {"owner": self.owner, "name": name, "kind": kind, "data": data, "updated_at": time.time()}
        stmt = _upsert(self.engine, t.crdt_state, values, ("owner", "name"))
        await self._write(lambda conn: conn.execute(stmt, values))

    async def get_state(self, name: str) -> tuple[str, bytes] | None:
        c = t.crdt_state.c
        q = sa.select(c.kind, c.data).where(c.owner == self.owner, c.name == name)
        row = await self._read(lambda conn: conn.execute(q).first())
        return (row.kind, bytes(row.data)) if row else None

    async def list_states(self) -> list[tuple[str, str]]:
        c = t.crdt_state.c
        q = sa.select(c.name, c.kind).where(c.owner == self.owner)
        return await self._read(lambda conn: [(r.name, r.kind) for r in conn.execute(q)])

    # -- retention -------------------------------------------------------------------------

    async def prune(
        self, *, samples_before: float, audit_before: float, messages_before: float
    ) -> dict[str, int]:
        """Delete rows older than the retention horizons; returns the counts removed."""

        def work(conn: sa.Connection) -> dict[str, int]:
            # the newest n outlives its row, so a cursor never sees n start again (see gossip_sequence)
            conn.execute(self._sequence_upsert, {"owner": self.owner, "last_n": self._stored_last_n(conn)})
            removed: dict[str, int] = {}
            for name, table, col, horizon in (
                ("link_samples", t.link_samples, t.link_samples.c.at, samples_before),
                ("mesh_gossip_audit", t.mesh_gossip_audit, t.mesh_gossip_audit.c.at, audit_before),
                ("gossip_messages", t.gossip_messages, t.gossip_messages.c.received_at, messages_before),
            ):
                res = conn.execute(sa.delete(table).where(table.c.owner == self.owner, col < horizon))
                removed[name] = res.rowcount
            return removed

        return await self._write(work)
