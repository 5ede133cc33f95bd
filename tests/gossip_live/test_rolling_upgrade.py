"""A node of the previous wire version (c5738a4) and one of this version deliver to each other.

The old code runs from ``git archive`` of that commit, on the same interpreter; the new side adds no
message kind (an old node drops unknown kinds as malformed and holds it against the sender), only
keys an old node ignores, and never depends on the old side answering anything new.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from nodes import NodeProcess, wait_for

PREVIOUS = "c5738a4"
ROOT = Path(__file__).resolve().parents[2]


def _previous_code(into: Path) -> Path:
    try:
        archive = subprocess.run(
            ["git", "-C", str(ROOT), "archive", "--format=tar", PREVIOUS, "f0mesh"],
            capture_output=True,
            check=True,
            timeout=60,
        ).stdout
    except (OSError, subprocess.CalledProcessError) as exc:
        pytest.skip(f"commit {PREVIOUS} is not in this checkout's history ({exc})")
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    return into


def _start_in(node: NodeProcess, code: Path, monkeypatch: pytest.MonkeyPatch) -> NodeProcess:
    """``python -m`` puts the working directory first on sys.path, ahead of PYTHONPATH."""
    with monkeypatch.context() as patch:
        patch.chdir(code)
        patch.setenv("PYTHONPATH", str(code))
        return node.start()


def _ids(node: NodeProcess) -> set[str]:
    rows = node.http.get("/api/gossip/messages", params={"topic": "mixed", "limit": 1000}).json()
    return {m["id"] for m in rows["messages"]}


def _publish(node: NodeProcess, count: int) -> list[str]:
    ids = []
    for n in range(count):
        r = node.http.post("/api/gossip", json={"topic": "mixed", "payload": {"n": n}})
        assert r.status_code == 200, r.text
        ids.append(r.json()["id"])
    return ids


def _peer_url(node: NodeProcess, peer_id: str) -> str | None:
    peers = node.http.get("/api/peers").json()["peers"]
    return next((p["url"] for p in peers if p["peer_id"] == peer_id), None)


def _rejections(node: NodeProcess) -> list[dict]:
    entries = node.http.get("/api/audit", params={"limit": 10000}).json()["entries"]
    return [e for e in entries if e["event"] == "rejected"]


def test_old_and_new_nodes_deliver_to_each_other_and_catch_up(tmp_path, node_factory, monkeypatch) -> None:
    old_code = _previous_code(tmp_path / "previous")
    help_text = subprocess.run(
        [sys.executable, "-m", "f0mesh", "up", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=old_code,
        env={**os.environ, "PYTHONPATH": str(old_code), "COLUMNS": "200"},
    ).stdout
    assert "--gossip-interval" in help_text and "--gossip-d" not in help_text  # really the old code
    old = _start_in(NodeProcess(tmp_path / "old", extra=["--qos-interval", "5"]), old_code, monkeypatch)
    new = node_factory("new", extra=["--qos-interval", "5", "--bootstrap", old.url, "--tag", "role=new"])
    try:
        wait_for(lambda: old.link_to(new.peer_id) and new.open_links(), 60, 0.5, "the link")
        from_old, from_new = _publish(old, 10), _publish(new, 10)
        everything = set(from_old + from_new)
        wait_for(lambda: everything <= _ids(old) and everything <= _ids(new), 30, 0.5, "both ways")
        # the new node's signed record (a map with tags and a key) reaches the old one as the list form
        wait_for(lambda: _peer_url(old, new.peer_id) == new.url, 30, 0.5, "the old node reads the new record")
        assert "dropped a peer record" not in (old.data_dir / "node.log").read_text(errors="replace")

        new.stop()  # the old side's catch-up pages (unmarked) bring the new one up to date
        missed = set(_publish(old, 10))
        new.start()
        wait_for(lambda: missed <= _ids(new), 60, 0.5, "catch-up from the old node")
        # neither side held anything the other sent against it
        assert _rejections(old) == [] and _rejections(new) == []
    finally:
        old.close()
