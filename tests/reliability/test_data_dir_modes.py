"""The data dir of a real node is private: the dir 0700, every file in it 0600, SQLite's -wal and
-shm included, whether the node made the dir or an older version left it wider (issue 18, class 6)."""

from __future__ import annotations

import stat
from pathlib import Path

from nodes import NodeProcess, wait_for


def _modes(data_dir: Path) -> dict[str, int]:
    return {p.name: stat.S_IMODE(p.stat().st_mode) for p in data_dir.iterdir()}


def _write_some(node: NodeProcess) -> None:
    assert node.http.post("/api/gossip", json={"topic": "t", "payload": {"n": 1}}).status_code == 200
    r = node.http.post("/api/state/notes", json={"kind": "map", "set": {"k": "v"}})
    assert r.status_code == 200, r.text


def _assert_private(data_dir: Path) -> None:
    assert stat.S_IMODE(data_dir.stat().st_mode) == 0o700, oct(data_dir.stat().st_mode)

    def with_wal() -> dict[str, int] | None:  # SQLite makes -wal and -shm on the first write
        modes = _modes(data_dir)
        return modes if {"mesh.db-wal", "mesh.db-shm"} <= modes.keys() else None

    modes = wait_for(with_wal, 10, what="mesh.db-wal and mesh.db-shm")
    assert {"identity.key", "mesh.db", "mesh.db-wal", "mesh.db-shm", "node.log"} <= modes.keys(), modes
    assert {name: oct(mode) for name, mode in modes.items() if mode != 0o600} == {}


def test_data_dir_and_every_file_in_it_are_private(tmp_path) -> None:
    data_dir = tmp_path / "node"
    data_dir.mkdir(mode=0o755)
    data_dir.chmod(0o755)  # as an operator's umask 022 leaves it
    (data_dir / "node.log").touch(mode=0o644)
    (data_dir / "node.log").chmod(0o644)
    node = NodeProcess(data_dir)
    try:
        node.start()
        _write_some(node)
        _assert_private(data_dir)
        node.stop()

        # A data dir left wide by an older version is tightened at start, and says so once.
        data_dir.chmod(0o755)
        for path in data_dir.iterdir():
            path.chmod(0o644)
        node.start()
        _write_some(node)
        _assert_private(data_dir)
        lines = [line for line in node.log_tail(200).splitlines() if "removed group and other access" in line]
        assert len(lines) == 2 and "mesh.db" in lines[-1] and "identity.key" in lines[-1], lines
    finally:
        node.close()
