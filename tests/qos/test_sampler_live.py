"""QoS on real links between node processes: figures, samples in the store, metrics, bad links."""

from __future__ import annotations

import os
import signal
import sqlite3

from nodes import wait_for

FAST = ["--qos-interval", "1", "--probe-rate", "10"]


def test_idle_link_reports_qos_and_stores_samples(node_factory) -> None:
    a, b = node_factory.many("a", "b", extra=FAST)
    assert a.dial(b).status_code == 200
    link = wait_for(
        lambda: (
            (lk := a.link_to(b.peer_id)) and lk["jitter_ms"] is not None and lk["health"] == "good" and lk
        ),
        20,
        0.3,
        "measured link",
    )
    assert 0 < link["rtt_ms"] < 100 and link["loss_pct"] == 0.0
    assert isinstance(link["jitter_ms"], float) and link["bitrate_kbps"] > 0
    metrics = a.http.get("/metrics").text
    assert f'f0mesh_link_rtt_seconds{{peer_id="{b.peer_id}"}}' in metrics
    wait_for(lambda: _sample_count(a) >= 3, 20, 0.5, "samples stored every interval")
    a.http.delete(f"/api/mesh-rtc/links/{b.peer_id}")
    wait_for(
        lambda: b.peer_id not in a.http.get("/metrics").text.split("f0mesh_link_rtt_seconds")[-1],
        10,
        0.3,
        "per-link gauges removed",
    )


def _sample_count(node) -> int:
    with sqlite3.connect(node.data_dir / "mesh.db") as db:
        return db.execute("SELECT count(*) FROM link_samples WHERE health != 'unknown'").fetchone()[0]


def _stored_state(node, link_id: str) -> tuple[str, str] | None:
    with sqlite3.connect(node.data_dir / "mesh.db") as db:
        row = db.execute("SELECT state, reason FROM mesh_links WHERE link_id = ?", (link_id,)).fetchone()
    return row if row and row[0] == "failed" else None


def test_silent_peer_turns_bad_then_fails(node_factory) -> None:
    a = node_factory("a", extra=[*FAST, "--heartbeat-timeout", "8"])
    b = node_factory("b", extra=FAST)
    assert a.dial(b).status_code == 200
    wait_for(lambda: (lk := a.link_to(b.peer_id)) and lk["health"] == "good", 20, 0.3, "good link")
    os.kill(b.proc.pid, signal.SIGSTOP)
    try:
        bad = wait_for(
            lambda: (lk := a.link_to(b.peer_id))["health"] == "bad" and lk, 8, 0.1, "link turns bad"
        )
        assert bad["state"] == "open"
        _state, reason = wait_for(
            lambda: _stored_state(a, bad["link_id"]), 15, 0.2, "heartbeat fails the link"
        )
        assert "heartbeat" in reason
    finally:
        os.kill(b.proc.pid, signal.SIGCONT)
