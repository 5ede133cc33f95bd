"""A full disk (issue 18, class 3): nothing is acknowledged that is not stored, and the node recovers alone.

The Store turns each backend's "disk full" (SQLite on a full tmpfs, PostgreSQL with its tables in a
tablespace on one) into StorageFullError, keeps reading, and writes again once space is back.

The data directory of a real ``f0mesh up`` is a small tmpfs that the test mounts, fills with a file and
frees again by deleting it. While it is full, every ``PUT /api/state`` and ``POST /api/gossip`` answers 200
or 507/503, never 500; the node is then killed (a crash while full is when an acknowledgement is tested)
and restarted on the same, still full, directory: every write answered 200 is there, none answered
otherwise is. Once the file is deleted the same process takes writes again.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import sqlalchemy as sa

from f0mesh.errors import StorageFullError, StoreUnavailableError
from f0mesh.identity import Identity
from f0mesh.store import Store
from f0mesh.store.store import storage_error

from nodes import NodeProcess
from pgserver import PgServer

PAD = "x" * 12_000  # per document: a few hundred of them outgrow any slack SQLite keeps in its files
WRITES = 120
REFUSED = (503, 507)


@pytest.fixture
def tmpfs() -> Iterator[Path]:
    """An 8 MiB tmpfs, unmounted afterwards; under /tmp so that the postgres user can reach it too."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root (CI runs as root)")
    root = Path(tempfile.mkdtemp(prefix="f0mesh-full-"))
    root.chmod(0o711)
    mount = root / "data"
    mount.mkdir()
    try:
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m,mode=0755", "tmpfs", str(mount)], check=True)
        try:
            yield mount
        finally:
            if subprocess.run(["umount", str(mount)], check=False).returncode != 0:
                subprocess.run(["umount", "--lazy", str(mount)], check=False)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def fill(directory: Path, leave: int = 0) -> Path:
    """Take all free space of the filesystem but ``leave`` bytes with one file; deleting it frees them."""
    path = directory / "filler"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        for size in (1 << 16, 1 << 12, 1 << 9, 1):
            with contextlib.suppress(OSError):  # ENOSPC: on to smaller writes
                while free(directory) - size >= leave and os.write(fd, b"\0" * size):
                    pass
    finally:
        os.close(fd)
    assert free(directory) <= leave + 4096, free(directory)
    return path


def free(directory: Path) -> int:
    st = os.statvfs(directory)
    return st.f_bavail * st.f_frsize


def empty(path: Path) -> None:
    path.unlink(missing_ok=True)


def put(node: NodeProcess, i: int) -> int:
    response = node.http.put(f"/api/state/doc{i}", json={"kind": "map", "value": {"i": i, "pad": PAD}})
    if response.status_code == 507:
        assert response.json()["error"] == "storage_full", response.text
    return response.status_code


def publish(node: NodeProcess, i: int) -> tuple[int, str | None]:
    response = node.http.post("/api/gossip", json={"topic": "full", "payload": {"i": i}})
    return response.status_code, response.json().get("id") if response.status_code == 200 else None


def test_full_disk_acknowledges_only_what_it_stored_and_recovers_alone(tmp_path: Path, tmpfs: Path) -> None:
    (tmpfs / "node.log").symlink_to(tmp_path / "node.log")  # the log must not share the full disk
    node = NodeProcess(tmpfs)
    filler: Path | None = None
    try:
        node.start()
        assert put(node, -1) == 200
        with contextlib.closing(sqlite3.connect(tmpfs / "mesh.db")) as db, db:
            # a link the crash leaves "open": start-up on the full disk marks it closed, or logs why not
            db.execute(
                "INSERT INTO mesh_links (owner, link_id, peer_id, direction, state, health, updated_at)"
                " VALUES (?, 'stale', ?, 'outbound', 'open', 'good', 0)",
                (node.peer_id, Identity.generate().peer_id),
            )
        filler = fill(tmpfs, leave=1 << 20)  # room for a few writes, then the disk is full

        answers: dict[int, int] = {}
        gossip: dict[int, tuple[int, str | None]] = {}
        for i in range(WRITES):
            answers[i] = put(node, i)
            if i % 4 == 0:
                gossip[i] = publish(node, i)
        statuses = {*answers.values(), *(status for status, _id in gossip.values())}
        assert statuses <= {200, *REFUSED}, statuses
        assert 507 in answers.values(), "the disk never filled up"
        assert any(status == 507 for status, _id in gossip.values()), "no publish met the full disk"
        health = node.http.get("/healthz")
        assert health.status_code == 200 and health.json()["storage"] == "full", health.text
        assert node.http.get("/api/state/doc-1").json()["value"]["i"] == -1  # reads go on

        node.kill()  # a crash while the disk is full: acknowledged writes must already be on it
        fill(tmpfs)  # to the last byte: what the crash released too
        node.start()  # and the node comes back up on the full disk
        acked = sorted(i for i, status in answers.items() if status == 200)
        surviving = sorted(i for i in range(WRITES) if node.http.get(f"/api/state/doc{i}").status_code == 200)
        print(
            f"full disk: {len(acked)} of {WRITES} PUT acknowledged, {len(surviving)} survived a crash;",
            end=" ",
        )
        assert surviving == acked
        for i in acked:
            assert node.http.get(f"/api/state/doc{i}").json()["value"] == {"i": i, "pad": PAD}
        stored = node.http.get("/api/gossip/messages", params={"topic": "full", "limit": 1000}).json()
        stored_payloads = {m["payload"]["i"]: m["id"] for m in stored["messages"]}
        acked_ids = {i: mid for i, (status, mid) in gossip.items() if status == 200}
        print(f"{len(acked_ids)} of {len(gossip)} publishes acknowledged, {len(stored_payloads)} survived")
        assert stored_payloads == acked_ids

        # space comes back: the same process takes writes again, no restart
        assert put(node, 1000) in REFUSED
        assert publish(node, 1000)[0] in REFUSED
        assert node.http.get("/healthz").json()["storage"] == "full"
        empty(filler)
        filler = None
        assert put(node, 1001) == 200
        assert publish(node, 1001)[0] == 200
        assert node.http.get("/healthz").json()["storage"] == "ok"
        assert node.http.get("/api/state/doc1000").status_code == 404
        # the start on the full disk could not prune: said in words, as an operating condition
        log = node.log_tail(5000)
        assert "retention pruning failed: not stored: the store's disk is full" in log
        assert "Traceback" not in log, log
    finally:
        node.close()
        if filler is not None:
            empty(filler)


async def test_sqlite_full_disk_refuses_writes_keeps_reading_and_writes_again(tmpfs: Path) -> None:
    store = await Store.open(f"sqlite:///{tmpfs / 'mesh.db'}", Identity.generate().peer_id)
    filler: Path | None = None
    try:
        await store.put_state("kept", "blob", b"k" * 1000)
        filler = fill(tmpfs)
        with pytest.raises(StorageFullError) as refused:
            await store.put_state("big", "blob", b"b" * (256 << 10))
        assert (refused.value.status, refused.value.code, store.storage) == (507, "storage_full", "full")
        with pytest.raises(StorageFullError):
            await store.commit_gossip([], [{"at": 1.0, "event": "rejected", "reason": "x"}] * 5000)
        assert await store.get_state("kept") == ("blob", b"k" * 1000)
        assert await store.get_state("big") is None
        empty(filler)
        filler = None
        await store.put_state("big", "blob", b"b" * (256 << 10))
        assert store.storage == "ok" and await store.get_state("big") == ("blob", b"b" * (256 << 10))
    finally:
        await store.close()
        if filler is not None:
            empty(filler)


async def test_postgresql_disk_full_is_storage_full(pg_server: PgServer, pg_url: str, tmpfs: Path) -> None:
    """SQLSTATE 53100 from a real server: the node's tables live in a tablespace on the full tmpfs."""
    shutil.chown(tmpfs, "postgres", "postgres")
    admin = psycopg.connect(pg_server.url("postgres"), autocommit=True)
    database = pg_url.rsplit("/", 1)[1]
    admin.execute(f"CREATE TABLESPACE {database}_full LOCATION '{tmpfs}'")
    admin.execute(f"ALTER DATABASE {database} SET default_tablespace = {database}_full")
    store = await Store.open(pg_url, Identity.generate().peer_id)
    filler: Path | None = None
    try:
        await store.put_state("kept", "blob", b"k" * 1000)
        filler = fill(tmpfs)
        with pytest.raises(StorageFullError):
            for i in range(64):  # past whatever free room the table's last pages had
                await store.put_state(f"big{i}", "blob", os.urandom(64 << 10))
        assert store.storage == "full"
        assert await store.get_state("kept") == ("blob", b"k" * 1000)
        empty(filler)
        filler = None
        await store.put_state("after", "blob", b"a")
        assert store.storage == "ok"
    finally:
        await store.close()
        if filler is not None:
            empty(filler)
        admin.execute(f"DROP DATABASE {database} WITH (FORCE)")
        admin.execute(f"DROP TABLESPACE {database}_full")
        admin.close()


def _sqlite_error(message: str, name: str) -> sa.exc.OperationalError:
    orig = sqlite3.OperationalError(message)
    orig.sqlite_errorname = name
    return sa.exc.OperationalError("INSERT", {}, orig)


def test_storage_errors_are_told_apart(tmp_path: Path) -> None:
    full = storage_error(_sqlite_error("database or disk is full", "SQLITE_FULL"))
    assert isinstance(full, StorageFullError) and "database or disk is full" in full.detail
    io_error = _sqlite_error("disk I/O error", "SQLITE_IOERR_WRITE")
    assert type(storage_error(io_error, tmp_path / "mesh.db")) is StoreUnavailableError  # space is left
    assert type(storage_error(_sqlite_error("database is locked", "SQLITE_BUSY"))) is StoreUnavailableError
    assert storage_error(_sqlite_error("no such table: x", "SQLITE_ERROR")) is None  # a bug, not the disk
    assert storage_error(sa.exc.IntegrityError("INSERT", {}, sqlite3.IntegrityError("UNIQUE"))) is None
    assert type(storage_error(ConnectionRefusedError("refused"))) is StoreUnavailableError


def test_psycopg_errors_are_told_apart() -> None:
    """What psycopg raises, as SQLAlchemy wraps it: the SQLSTATE, or none when the server never answered."""

    def wrapped(error: psycopg.Error) -> sa.exc.DBAPIError:
        return sa.exc.DBAPIError.instance("INSERT", {}, error, psycopg.Error)

    full = storage_error(wrapped(psycopg.errors.DiskFull("could not extend file")))
    assert isinstance(full, StorageFullError)
    for unavailable in (
        psycopg.OperationalError("connection failed: Connection refused"),  # no SQLSTATE
        psycopg.errors.QueryCanceled("canceling statement due to statement timeout"),  # 57014
        psycopg.errors.AdminShutdown("terminating connection due to administrator command"),  # 57P01
        psycopg.errors.TooManyConnections("sorry, too many clients already"),  # 53300
    ):
        assert type(storage_error(wrapped(unavailable))) is StoreUnavailableError, unavailable
    assert storage_error(wrapped(psycopg.errors.UniqueViolation("duplicate key"))) is None
    assert storage_error(wrapped(psycopg.errors.NotNullViolation("null value"))) is None
