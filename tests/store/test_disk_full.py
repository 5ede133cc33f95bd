"""A full disk (issue 18, class 3): nothing is acknowledged that is not stored, and the node recovers alone.

The data directory of a real ``f0mesh up`` is a small tmpfs that the test mounts, fills with a file and
frees again by deleting it. While it is full, every ``PUT /api/state`` and ``POST /api/gossip`` answers 200
or 507/503, never 500; the node is then killed (a crash while full is when an acknowledgement is tested)
and restarted on the same directory: every write answered 200 is there, none answered otherwise is. The
restarted node, filled again and freed again, takes writes without a restart.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from nodes import NodeProcess

PAD = "x" * 12_000  # per document: a few hundred of them outgrow any slack SQLite keeps in its files
WRITES = 120
REFUSED = (503, 507)


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Path]:
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root (CI runs as root)")
    mount = tmp_path / "data"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m,mode=0700", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        if subprocess.run(["umount", str(mount)], check=False).returncode != 0:
            subprocess.run(["umount", "--lazy", str(mount)], check=False)


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
        empty(filler)
        node.start()
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

        # filled again and freed again: the same process takes writes, no restart
        filler = fill(tmpfs)
        assert put(node, 1000) in REFUSED
        assert publish(node, 1000)[0] in REFUSED
        assert node.http.get("/healthz").json()["storage"] == "full"
        empty(filler)
        filler = None
        assert put(node, 1001) == 200
        assert publish(node, 1001)[0] == 200
        assert node.http.get("/healthz").json()["storage"] == "ok"
        assert node.http.get("/api/state/doc1000").status_code == 404
    finally:
        node.close()
        if filler is not None:
            empty(filler)
