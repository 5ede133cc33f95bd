"""The Store: every table access of a node, scoped to its own PeerId.

SQLAlchemy Core over aiosqlite or asyncpg. Every write is one transaction, so a crash never
leaves half a batch behind; SQLite runs in WAL mode so readers (the API) never block the writer.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import operator
import os
import sqlite3
import time
from collections.abc import AsyncIterator, Iterable, Sequence
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from f0mesh.datadir import private_file
from f0mesh.errors import ConfigError, StorageFullError, StoreUnavailableError
from f0mesh.store import schema as t
from f0mesh.store.migrations import migrate
from f0mesh.store.url import redact, to_async_url


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    # Many writers of one node share the file; under CPU starvation a transaction can hold the lock
    # for seconds, and a writer should wait for it rather than fail.
    cur.execute("PRAGMA busy_timeout=30000")
    cur.execute("PRAGMA foreign_keys=ON")
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
    now" (I/O error, busy, lost connection); the API answers these 507 and 503.
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
        or isinstance(exc, PoolTimeoutError | InterfaceError)
        or isinstance(orig, OSError)  # TimeoutError too: a statement timeout, a connection refused
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


def _insert(engine: AsyncEngine, table: sa.Table) -> Any:
    """INSERT in the backend's own dialect, which has ON CONFLICT."""
    if engine.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert(table)


def _last_seen_forward(stmt: Any) -> Any:
    """ON CONFLICT value of mesh_peers.last_seen: the newer of the stored and the offered one."""
    c = t.mesh_peers.c
    return sa.case(
        (sa.or_(c.last_seen.is_(None), stmt.excluded.last_seen > c.last_seen), stmt.excluded.last_seen),
        else_=c.last_seen,
    )


def _upsert(engine: AsyncEngine, table: sa.Table, values: dict[str, Any], keys: Sequence[str]) -> Any:
    """INSERT .. ON CONFLICT DO UPDATE in the backend's own dialect."""
    stmt = _insert(engine, table).values(**values)
    update = {k: stmt.excluded[k] for k in values if k not in keys}
    return stmt.on_conflict_do_update(index_elements=list(keys), set_=update)


def _insert_ignore(engine: AsyncEngine, table: sa.Table) -> Any:
    """INSERT .. ON CONFLICT DO NOTHING, executed with a list of rows: one cached compiled statement,
    where ``.values(rows)`` compiled a new multi-row statement for every batch (~20 % of a gossip
    receiver's CPU)."""
    return _insert(engine, table).on_conflict_do_nothing()


class _DriverInsert:
    """An INSERT compiled once for the backend, executed as driver SQL with plain tuples.

    The gossip rows hold only str, int, float, bytes and None, which sqlite3 and asyncpg take as
    they are; SQLAlchemy's per-row parameter processing (bind processors, ``construct_params``)
    was ~30 us per message and audit row on the gossip hot path, more than the INSERT itself.
    """

    def __init__(self, engine: AsyncEngine, stmt: Any, columns: Sequence[str]) -> None:
        compiled = stmt.compile(dialect=engine.dialect, column_keys=list(columns))
        if compiled.positiontup is None:
            raise ConfigError(f"store dialect {engine.dialect.name} has no positional parameters")
        self.sql = compiled.string
        self.order = tuple(compiled.positiontup)

    def rows(self, rows: Iterable[dict[str, Any]]) -> list[tuple[Any, ...]]:
        """Each row's values in the statement's order; a key a row lacks is NULL."""
        pick = operator.itemgetter(*self.order)
        blank = dict.fromkeys(self.order)
        out = []
        for row in rows:
            try:
                out.append(pick(row))
            except KeyError:
                out.append(pick({**blank, **row}))
        return out


def _payload_columns(payload: Any) -> dict[str, Any]:
    if isinstance(payload, bytes):
        return {"payload": "null", "payload_bin": payload}
    return {"payload": json.dumps(payload, separators=(",", ":")), "payload_bin": None}


def _message_row(row: Any) -> dict[str, Any]:
    """A stored message with its payload decoded: bytes come back as bytes."""
    out = {k: v for k, v in dict(row).items() if k != "payload_bin"}
    blob = row["payload_bin"]
    out["payload"] = bytes(blob) if blob is not None else json.loads(row["payload"])
    return out


class Store:
    """Async access to a node's tables. Open with ``await Store.open(url, owner)``."""

    def __init__(self, engine: AsyncEngine, owner: str) -> None:
        self.engine = engine
        self.owner = owner
        sqlite = engine.dialect.name == "sqlite"
        self._sqlite = sqlite
        self._write_lock = asyncio.Lock() if sqlite else None
        self._db_path = Path(engine.url.database) if sqlite and engine.url.database else None
        self._gossip_lock = asyncio.Lock()
        self._gossip_n: int | None = None  # the newest n handed out, once read from the store
        # how the last write went: "ok", "full" (storage_full) or "unavailable"; /healthz reports it
        self.storage = "ok"

    @contextlib.asynccontextmanager
    async def _begin(self) -> AsyncIterator[AsyncConnection]:
        """One write transaction. SQLite has a single writer: queueing this node's writers here, in
        order, replaces a crowd of connections polling the file lock from their own threads, which
        under CPU starvation let some wait past any busy timeout ("database is locked").

        A write the store did not take raises StorageFullError or StoreUnavailableError (see
        storage_error); nothing of the transaction is kept, so the caller must not acknowledge it.
        """
        try:
            async with contextlib.AsyncExitStack() as stack:
                if self._write_lock is not None:
                    await stack.enter_async_context(self._write_lock)
                yield await stack.enter_async_context(self.engine.begin())
        except (DBAPIError, PoolTimeoutError, OSError, sqlite3.Error) as exc:
            # sqlite3.Error: what _insert_many sends straight to the driver is not wrapped by SQLAlchemy
            error = storage_error(exc, self._db_path)
            if error is None:
                raise
            self.storage = "full" if isinstance(error, StorageFullError) else "unavailable"
            raise error from exc
        self.storage = "ok"

    @property
    def backend(self) -> str:
        return self.engine.dialect.name

    @classmethod
    async def open(cls, store_url: str, owner: str) -> Store:
        """Connect, migrate, and return a Store; an unreachable or bad URL is a one-line ConfigError."""
        url = to_async_url(store_url)
        kwargs: dict[str, Any] = {}
        if url.drivername.startswith("sqlite"):
            if url.database != ":memory:":
                try:
                    private_file(Path(url.database or ""))
                except OSError as exc:
                    raise ConfigError(
                        f"cannot open store {redact(store_url)}: {exc.strerror or exc}"
                    ) from exc
            kwargs["connect_args"] = {"timeout": 10}
            # every aiosqlite connection is a thread of its own; writes are serialised anyway
            kwargs["pool_size"] = 2
            kwargs["max_overflow"] = 3
        else:
            kwargs["pool_size"] = 5
            kwargs["pool_pre_ping"] = True
            kwargs["connect_args"] = {"timeout": 10, "command_timeout": 30}
        engine = create_async_engine(url, **kwargs)
        if url.drivername.startswith("sqlite"):
            event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        try:
            async with engine.begin() as conn:
                await conn.run_sync(migrate)
        except (OperationalError, DBAPIError, OSError) as exc:
            await engine.dispose()
            reason = str(getattr(exc, "orig", exc) or exc).splitlines()[0]
            raise ConfigError(f"cannot open store {redact(store_url)}: {reason}") from exc
        except Exception:
            await engine.dispose()
            raise
        return cls(engine, owner)

    async def close(self) -> None:
        await self.engine.dispose()

    async def schema_version(self) -> int:
        async with self.engine.connect() as conn:
            return (await conn.execute(sa.select(sa.func.max(t.schema_version.c.version)))).scalar() or 0

    # -- peers -----------------------------------------------------------------------------

    def _peer_upsert(
        self,
        peer_id: str,
        url: str | None = None,
        last_seen: float | None = None,
        trust: float | None = None,
        location: str | None = None,
    ) -> Any:
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
        stmt = _insert(self.engine, t.mesh_peers).values(**values)
        update: dict[str, Any] = {}
        if url is not None:
            update["url"] = stmt.excluded.url
        if trust is not None:
            update["trust"] = stmt.excluded.trust
        if location is not None:
            update["location"] = stmt.excluded.location
        if last_seen is not None:
            update["last_seen"] = _last_seen_forward(stmt)
        if update:
            return stmt.on_conflict_do_update(index_elements=["owner", "peer_id"], set_=update)
        return stmt.on_conflict_do_nothing()

    async def upsert_peer(
        self,
        peer_id: str,
        *,
        url: str | None = None,
        last_seen: float | None = None,
        trust: float | None = None,
        location: str | None = None,
    ) -> dict[str, Any]:
        c = t.mesh_peers.c
        async with self._begin() as conn:
            await conn.execute(self._peer_upsert(peer_id, url, last_seen, trust, location))
            row = (
                (
                    await conn.execute(
                        sa.select(t.mesh_peers).where(c.owner == self.owner, c.peer_id == peer_id)
                    )
                )
                .mappings()
                .first()
            )
        return dict(row) if row else {}

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
        c = t.mesh_peers.c
        stmt = _insert(self.engine, t.mesh_peers)
        stmt = stmt.on_conflict_do_update(
            index_elements=["owner", "peer_id"],
            set_={
                "url": sa.func.coalesce(stmt.excluded.url, c.url),
                "last_seen": _last_seen_forward(stmt),
            },
        )
        async with self._begin() as conn:
            await conn.execute(stmt, rows)

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
        async with self._begin() as conn:
            await conn.execute(stmt, [{"o": self.owner, "p": p, "s": score} for p, score in scores.items()])

    async def set_peer_blocked(self, peer_id: str, blocked: bool) -> None:
        await self.upsert_peer(peer_id)
        async with self._begin() as conn:
            await conn.execute(
                sa.update(t.mesh_peers)
                .where(t.mesh_peers.c.owner == self.owner, t.mesh_peers.c.peer_id == peer_id)
                .values(blocked=blocked)
            )

    async def get_peer(self, peer_id: str) -> dict[str, Any] | None:
        async with self.engine.connect() as conn:
            row = (
                (
                    await conn.execute(
                        sa.select(t.mesh_peers).where(
                            t.mesh_peers.c.owner == self.owner, t.mesh_peers.c.peer_id == peer_id
                        )
                    )
                )
                .mappings()
                .first()
            )
        return dict(row) if row else None

    async def list_peers(self, limit: int = 1000) -> list[dict[str, Any]]:
        async with self.engine.connect() as conn:
            rows = (
                (
                    await conn.execute(
                        sa.select(t.mesh_peers)
                        .where(t.mesh_peers.c.owner == self.owner)
                        .order_by(t.mesh_peers.c.last_seen.desc().nulls_last(), t.mesh_peers.c.peer_id)
                        .limit(limit)
                    )
                )
                .mappings()
                .all()
            )
        return [dict(r) for r in rows]

    async def delete_peer(self, peer_id: str) -> bool:
        async with self._begin() as conn:
            res = await conn.execute(
                sa.delete(t.mesh_peers).where(
                    t.mesh_peers.c.owner == self.owner, t.mesh_peers.c.peer_id == peer_id
                )
            )
        return res.rowcount > 0

    async def delete_peers(self, peer_ids: Sequence[str]) -> int:
        """Forget peers in one transaction (strangers the node collected); returns the rows removed."""
        if not peer_ids:
            return 0
        c = t.mesh_peers.c
        async with self._begin() as conn:
            res = await conn.execute(
                sa.delete(t.mesh_peers).where(c.owner == self.owner, c.peer_id.in_(list(peer_ids)))
            )
        return res.rowcount

    # -- links -----------------------------------------------------------------------------

    async def prune_links(self, *, ended_before: float, keep: int) -> int:
        """Delete rows of links that failed or closed before ``ended_before``, and beyond the newest
        ``keep`` ended ones: a flood of failed offers leaves a bounded trail, recent failures stay visible."""
        c = t.mesh_links.c
        ended = sa.and_(c.owner == self.owner, c.state.in_(("failed", "closed")))
        newest = sa.select(c.link_id).where(ended).order_by(c.updated_at.desc()).limit(keep)
        async with self._begin() as conn:
            res = await conn.execute(
                sa.delete(t.mesh_links).where(
                    ended, sa.or_(c.updated_at < ended_before, c.link_id.not_in(newest.scalar_subquery()))
                )
            )
        return res.rowcount

    async def upsert_link(self, link: dict[str, Any]) -> None:
        values = {"owner": self.owner, "updated_at": time.time(), **link}
        async with self._begin() as conn:
            await conn.execute(_upsert(self.engine, t.mesh_links, values, ("owner", "link_id")))

    async def list_links(self, *, peer_id: str | None = None, limit: int = 1000) -> list[dict[str, Any]]:
        q = sa.select(t.mesh_links).where(t.mesh_links.c.owner == self.owner)
        if peer_id is not None:
            q = q.where(t.mesh_links.c.peer_id == peer_id)
        q = q.order_by(t.mesh_links.c.updated_at.desc()).limit(limit)
        async with self.engine.connect() as conn:
            rows = (await conn.execute(q)).mappings().all()
        return [dict(r) for r in rows]

    async def close_stale_links(self, reason: str) -> int:
        """At start-up no link of a previous run can still be live: mark them closed."""
        async with self._begin() as conn:
            res = await conn.execute(
                sa.update(t.mesh_links)
                .where(t.mesh_links.c.owner == self.owner, t.mesh_links.c.state.in_(("connecting", "open")))
                .values(state="closed", closed_at=time.time(), reason=reason, updated_at=time.time())
            )
        return res.rowcount

    # -- QoS samples -----------------------------------------------------------------------

    async def add_samples(
        self, samples: Iterable[dict[str, Any]], links: Iterable[dict[str, Any]] = ()
    ) -> None:
        """One sampling round: the time-series rows and the links' current figures, atomically."""
        rows = [{"owner": self.owner, **s} for s in samples]
        now = time.time()
        async with self._begin() as conn:
            if rows:
                await conn.execute(sa.insert(t.link_samples), rows)
            for link in links:
                figures = {k: v for k, v in link.items() if k != "link_id"}
                await conn.execute(
                    sa.update(t.mesh_links)
                    .where(t.mesh_links.c.owner == self.owner, t.mesh_links.c.link_id == link["link_id"])
                    .values(**figures, updated_at=now)
                )

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
        async with self.engine.connect() as conn:
            rows = (await conn.execute(q)).mappings().all()
        return [dict(r) for r in reversed(rows)]

    # -- gossip ----------------------------------------------------------------------------

    async def commit_gossip(
        self, messages: Sequence[dict[str, Any]], audit: Sequence[dict[str, Any]]
    ) -> None:
        """Message rows and their audit rows in one transaction: acks wait for this commit.

        Each message gets the owner's next ``n``, counted here (one node per owner) under a lock
        held until the commit, so n orders messages as they became visible. A message already
        stored is skipped by the insert and leaves a gap in n, which orders but does not count.
        """
        unique = list({m["id"]: m for m in messages}.values())
        owner = self.owner
        async with self._gossip_lock:
            async with self._begin() as conn:
                last = self._gossip_n if self._gossip_n is not None else await self._stored_last_n(conn)
                if unique:
                    insert = self._gossip_insert
                    rows = [
                        {**m, "owner": owner, "n": last + i, **_payload_columns(m["payload"])}
                        for i, m in enumerate(unique, start=1)
                    ]
                    await self._insert_many(conn, insert, insert.rows(rows))
                if audit:
                    insert = self._audit_insert
                    await self._insert_many(conn, insert, insert.rows({**a, "owner": owner} for a in audit))
            self._gossip_n = last + len(unique)

    async def _insert_many(
        self, conn: AsyncConnection, insert: _DriverInsert, rows: list[tuple[Any, ...]]
    ) -> None:
        """SQLite: straight to aiosqlite, one trip to its thread where SQLAlchemy's cursor takes three
        (open, executemany, close). Each trip is a thread handoff costing the event loop ~0.1 ms of
        CPU; a gossip commit made eight, now four (issue #25). The rows still belong to the
        transaction the engine began: sqlite3 opens it at the first INSERT on this connection and
        the engine's commit or rollback ends it."""
        if self._sqlite:
            driver = (await conn.get_raw_connection()).driver_connection
            await driver.executemany(insert.sql, rows)
        else:
            await conn.exec_driver_sql(insert.sql, rows)

    @functools.cached_property
    def _gossip_insert(self) -> _DriverInsert:
        columns = [c.name for c in t.gossip_messages.columns]
        return _DriverInsert(self.engine, _insert_ignore(self.engine, t.gossip_messages), columns)

    @functools.cached_property
    def _audit_insert(self) -> _DriverInsert:
        columns = [c.name for c in t.mesh_gossip_audit.columns if c.name != "id"]
        return _DriverInsert(self.engine, sa.insert(t.mesh_gossip_audit), columns)

    @functools.cached_property
    def _sequence_upsert(self) -> Any:
        """Executed with parameters, so it is compiled once."""
        stmt = _insert(self.engine, t.gossip_sequence)
        return stmt.on_conflict_do_update(index_elements=["owner"], set_={"last_n": stmt.excluded.last_n})

    async def _stored_last_n(self, conn: AsyncConnection) -> int:
        """The newest n: of the rows, or saved in gossip_sequence by a prune that deleted them."""
        c = t.gossip_messages.c
        rows = (await conn.execute(sa.select(sa.func.max(c.n)).where(c.owner == self.owner))).scalar()
        q = sa.select(t.gossip_sequence.c.last_n).where(t.gossip_sequence.c.owner == self.owner)
        saved = (await conn.execute(q)).scalar()
        return max(rows or 0, saved or 0)

    async def last_message_n(self) -> int:
        """The n of the newest stored message (0 if none ever was): where a live-only stream starts."""
        if self._gossip_n is not None:
            return self._gossip_n
        async with self.engine.connect() as conn:
            return await self._stored_last_n(conn)

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
        q = newest_first if since is None else q.where(c.n > since).order_by(c.n)
        async with self.engine.connect() as conn:
            rows = (await conn.execute(q.limit(limit))).mappings().all()
        return [_message_row(r) for r in rows]

    async def count_messages(self, *, topic: str | None, after: int, upto: int) -> int:
        """Messages with after < n <= upto: what a stream skipped when it jumped ahead."""
        c = t.gossip_messages.c
        q = sa.select(sa.func.count()).where(c.owner == self.owner, c.n > after, c.n <= upto)
        if topic:
            q = q.where(c.topic == topic)
        async with self.engine.connect() as conn:
            return (await conn.execute(q)).scalar() or 0

    async def message_ids_since(self, created_after: float, limit: int = 10000) -> list[str]:
        """Ids of messages created after a time, newest first (repair digests)."""
        c = t.gossip_messages.c
        q = (
            sa.select(c.id)
            .where(c.owner == self.owner, c.created_at > created_after)
            .order_by(c.created_at.desc())
            .limit(limit)
        )
        async with self.engine.connect() as conn:
            return list((await conn.execute(q)).scalars().all())

    async def get_raw_messages(self, ids: Sequence[str]) -> dict[str, bytes]:
        if not ids:
            return {}
        c = t.gossip_messages.c
        q = sa.select(c.id, c.raw).where(c.owner == self.owner, c.id.in_(list(ids)))
        async with self.engine.connect() as conn:
            return {r.id: bytes(r.raw) for r in (await conn.execute(q)).all()}

    async def has_messages(self, ids: Sequence[str]) -> set[str]:
        if not ids:
            return set()
        c = t.gossip_messages.c
        q = sa.select(c.id).where(c.owner == self.owner, c.id.in_(list(ids)))
        async with self.engine.connect() as conn:
            return set((await conn.execute(q)).scalars().all())

    async def max_seq(self, origin: str) -> int:
        c = t.gossip_messages.c
        q = sa.select(sa.func.max(c.seq)).where(c.owner == self.owner, c.origin == origin)
        async with self.engine.connect() as conn:
            return (await conn.execute(q)).scalar() or 0

    async def list_audit(self, *, limit: int = 100, event_name: str | None = None) -> list[dict[str, Any]]:
        c = t.mesh_gossip_audit.c
        q = sa.select(c.at, c.event, c.message_id, c.peer_id, c.reason).where(c.owner == self.owner)
        if event_name:
            q = q.where(c.event == event_name)
        q = q.order_by(c.id.desc()).limit(limit)
        async with self.engine.connect() as conn:
            return [dict(r) for r in (await conn.execute(q)).mappings().all()]

    # -- CRDT state ------------------------------------------------------------------------

    async def put_state(self, name: str, kind: str, data: bytes) -> None:
        values = {"owner": self.owner, "name": name, "kind": kind, "data": data, "updated_at": time.time()}
        async with self._begin() as conn:
            await conn.execute(_upsert(self.engine, t.crdt_state, values, ("owner", "name")))

    async def get_state(self, name: str) -> tuple[str, bytes] | None:
        c = t.crdt_state.c
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(sa.select(c.kind, c.data).where(c.owner == self.owner, c.name == name))
            ).first()
        return (row.kind, bytes(row.data)) if row else None

    async def list_states(self) -> list[tuple[str, str]]:
        c = t.crdt_state.c
        async with self.engine.connect() as conn:
            rows = (await conn.execute(sa.select(c.name, c.kind).where(c.owner == self.owner))).all()
        return [(r.name, r.kind) for r in rows]

    # -- retention -------------------------------------------------------------------------

    async def prune(
        self, *, samples_before: float, audit_before: float, messages_before: float
    ) -> dict[str, int]:
        """Delete rows older than the retention horizons; returns the counts removed."""
        removed: dict[str, int] = {}
        async with self._begin() as conn:
            # the newest n outlives its row, so a cursor never sees n start again (see gossip_sequence)
            await conn.execute(
                self._sequence_upsert, {"owner": self.owner, "last_n": await self._stored_last_n(conn)}
            )
            for name, table, col, horizon in (
                ("link_samples", t.link_samples, t.link_samples.c.at, samples_before),
                ("mesh_gossip_audit", t.mesh_gossip_audit, t.mesh_gossip_audit.c.at, audit_before),
                ("gossip_messages", t.gossip_messages, t.gossip_messages.c.received_at, messages_before),
            ):
                res = await conn.execute(sa.delete(table).where(table.c.owner == self.owner, col < horizon))
                removed[name] = res.rowcount
        return removed
