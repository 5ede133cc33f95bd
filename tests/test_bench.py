"""Smoke tests of the benchmark suite: its cheapest figures run end to end and write the agreed shape,
and the report renders the keys that carry no goal (gossip, libp2p_rss_idle).

Timing values are never asserted: this machine is shared, and the figures are for people to read.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from bench import report
from bench.suites import reported

REPO = Path(__file__).resolve().parents[1]


def _run_bench(out: Path, *args: str) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, "-m", "bench", *args, "--repeats", "1", "--out", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads((out / "results.json").read_text())


def _check_figure(fig: dict[str, Any], goal: str, unit: str) -> None:
    for key in ("f0mesh", "baseline", "ratio"):
        assert isinstance(fig[key], int | float) and fig[key] > 0, fig
    assert isinstance(fig["met"], bool)
    assert fig["goal"] == goal and fig["unit"] == unit and fig["repeats"] == 1
    assert len(fig["samples"]["f0mesh"]) == 1 and len(fig["samples"]["baseline"]) == 1


def test_bench_setup_writes_results(tmp_path: Path) -> None:
    results = _run_bench(tmp_path, "--only", "setup")
    assert list(results) == ["setup"]
    _check_figure(results["setup"], "ratio <= 1.5", "ms")
    assert "| `setup` |" in (tmp_path / "RESULTS.md").read_text()


def test_bench_validation_writes_results(tmp_path: Path) -> None:
    results = _run_bench(tmp_path, "--quick", "--only", "validation")
    assert list(results) == ["validation"]
    fig = results["validation"]
    _check_figure(fig, "ratio >= 0.5", "msgs/s")
    assert fig["samples"]["envelopes"] > 0 and len(fig["samples"]["wall_f0mesh"]) == 1


def test_report_renders_reported_keys(tmp_path: Path) -> None:
    """gossip and libp2p_rss_idle have no goal (met is None); a mesh size that failed is shown as such."""
    n8 = {
        "nodes": 8,
        "messages": 2,
        "incomplete": 0,
        "last_delivery_ms_p50": 40.0,
        "last_delivery_ms_p99": 60.0,
        "last_delivery_ms": [40.0, 60.0],
        "hops_p99": 2,
        "hops_max": 2,
        "duplicates_per_node_per_message": 0.5,
        "one_hop_rtt_ms": 3.0,
        "links_per_node": [3, 4],
        "mesh_formed_s": 12.0,
    }
    by_n = {"8": n8, "16": {"nodes": 16, "error": "TimeoutError: not ready"}}
    results = {
        "gossip": reported([40.0, 60.0], [3.0], unit="ms", extra={"nodes": 8, "by_n": by_n}),
        "libp2p_rss_idle": reported([150_000.0], [90_000.0], unit="kB", extra={"links": 8}),
    }
    for fig in results.values():
        assert fig["met"] is None and fig["goal"] == "none (reported)" and fig["ratio"] > 0
    meta = {
        "date": report.now_utc(),
        "mode": "quick",
        "command": "test",
        "machine": report.machine(),
        "versions": report.versions(),
        "duration_s": 1.0,
        "failed": {},
    }
    report.write(results, tmp_path / "results.json", tmp_path / "RESULTS.md", meta)
    md = (tmp_path / "RESULTS.md").read_text()
    assert "| `gossip` |" in md and "| `libp2p_rss_idle` |" in md
    assert "| 16 | not measured: TimeoutError: not ready |" in md
    assert "N = 32" in md
    assert json.loads((tmp_path / "results.json").read_text())["gossip"]["samples"]["by_n"]["8"] == n8


def test_crypto_floor_counts_sign_and_verify_pairs() -> None:
    """The message_rate_crypto baseline: a positive rate of real Ed25519 work, not a stub."""
    from bench.validation import crypto_floor

    assert crypto_floor(50, "ab" * 50, "bench.gossip") > 0


def test_report_renders_crypto_and_libp2p_keys(tmp_path: Path) -> None:
    """The new keys keep the shape (f0mesh, baseline, ratio, goal, met, unit), and RESULTS.md shows
    each with its method, the py-libp2p transport, and a mesh size that failed as such."""
    from bench.common import figure

    l8 = {
        "nodes": 8,
        "messages": 2,
        "incomplete": 0,
        "last_delivery_ms_p50": 80.0,
        "last_delivery_ms_p99": 120.0,
        "last_delivery_ms": [80.0, 120.0],
        "duplicates_per_node_per_message": 2.5,
    }
    by_n = {"8": l8, "16": {"nodes": 16, "error": "TimeoutError: libp2p p9: no answer"}}
    rate = figure(
        [2000.0],
        [100.0],
        unit="msgs/s",
        op=">=",
        goal=1.5,
        extra={
            "transport": "tcp (Noise, yamux)",
            "messages_f0mesh": 4000,
            "messages_libp2p": 1000,
            "per_cpu_second_f0mesh": [1800.0],
            "per_cpu_second_baseline": [400.0],
            "per_cpu_second_ratio": 4.5,
        },
    )
    results = {
        "message_rate_crypto": figure(
            [1800.0],
            [6500.0],
            unit="msgs/CPU-s",
            op=">=",
            goal=0.6,
            extra={"messages": 4000, "per_cpu_second_batch": [3000.0], "wall_rate_batch": [4000.0]},
        ),
        "libp2p_message_rate": rate,
        "libp2p_setup": reported([40.0], [250.0], unit="ms", extra={"transport": "tcp"}),
        "libp2p_gossip": reported([60.0], [120.0], unit="ms", extra={"nodes": 8, "by_n": by_n}),
        "libp2p_rss_idle": reported(
            [150_000.0], [70_000.0], unit="kB", extra={"f0mesh_links": 5, "libp2p_connections": 8}
        ),
    }
    assert results["message_rate_crypto"]["met"] is False and results["libp2p_message_rate"]["met"] is True
    meta = {
        "date": report.now_utc(),
        "mode": "quick",
        "command": "test",
        "machine": report.machine(),
        "versions": report.versions(),
        "duration_s": 1.0,
        "failed": {},
    }
    report.write(results, tmp_path / "results.json", tmp_path / "RESULTS.md", meta)
    md = (tmp_path / "RESULTS.md").read_text()
    for key, fig in json.loads((tmp_path / "results.json").read_text()).items():
        assert {"f0mesh", "baseline", "ratio", "goal", "met", "unit"} <= set(fig), key
        assert f"| `{key}` |" in md and f"### `{key}`" in md
    assert "| 16 | not measured: TimeoutError: libp2p p9: no answer |" in md
    assert "Transport: py-libp2p over TCP" in md
    assert "Per CPU-second ratio: 4.50." in md
    assert "Published in batches (`Node.publish_many`" in md and "ratio to the floor 0.46" in md


def test_report_renders_libdatachannel_spike(tmp_path: Path) -> None:
    """The spike's key keeps the shape and RESULTS.md shows CPU per MB, setup, memory and interop."""
    spike = {
        "cpu_s_per_mb": {"aiortc": [0.13, 0.11], "libdatachannel": [0.03, 0.034]},
        "setup_ms": {"aiortc": [450.0, 30.0], "libdatachannel": [78.0, 7.0]},
        "rss_kb_per_connection_end": {"aiortc": 136.0, "libdatachannel": 64.0},
        "interop": {"ok": False, "detail": "TimeoutError: "},
    }
    results = {"libdatachannel_throughput": reported([2.8, 2.5], [30.0, 19.0], unit="MB/s", extra=spike)}
    meta = {
        "date": report.now_utc(),
        "mode": "quick",
        "command": "test",
        "machine": report.machine(),
        "versions": report.versions(),
        "duration_s": 1.0,
        "failed": {},
    }
    report.write(results, tmp_path / "results.json", tmp_path / "RESULTS.md", meta)
    md = (tmp_path / "RESULTS.md").read_text()
    fig = json.loads((tmp_path / "results.json").read_text())["libdatachannel_throughput"]
    assert {"f0mesh", "baseline", "ratio", "goal", "met", "unit"} <= set(fig) and fig["met"] is None
    assert "| `libdatachannel_throughput` |" in md and "aiolibdatachannel" in md
    assert "CPU-seconds per MB (both ends)" in md and "(3.8x less CPU per byte)" in md
    assert "Interop (libdatachannel offer, aiortc answer): no" in md


def test_report_renders_relayed_dial(tmp_path: Path) -> None:
    """relayed_dial keeps the shape with its goal, is a key `--only` accepts, and RESULTS.md shows its
    method and the dialler's own setup_ms through the relay next to HTTP."""
    from bench.__main__ import KEYS
    from bench.common import figure

    extra = {
        "f0mesh_api_setup_ms": [60.0, 80.0],
        "baseline_api_setup_ms": [40.0, 40.0],
        "f0mesh_peer_saw_failed": 0,
        "f0mesh_failed_rounds": ["RuntimeError: dial of private used http signaling"],
        "baseline_failed_rounds": [],
    }
    results = {"relayed_dial": figure([70.0, 90.0], [50.0, 50.0], unit="ms", op="<=", goal=1.5, extra=extra)}
    assert "relayed_dial" in KEYS and results["relayed_dial"]["met"] is False
    meta = {
        "date": report.now_utc(),
        "mode": "quick",
        "command": "test",
        "machine": report.machine(),
        "versions": report.versions(),
        "duration_s": 1.0,
        "failed": {},
    }
    report.write(results, tmp_path / "results.json", tmp_path / "RESULTS.md", meta)
    md = (tmp_path / "RESULTS.md").read_text()
    fig = json.loads((tmp_path / "results.json").read_text())["relayed_dial"]
    assert {"f0mesh", "baseline", "ratio", "goal", "met", "unit"} <= set(fig)
    assert fig["ratio"] == 1.6 and fig["goal"] == "ratio <= 1.5"
    assert "| `relayed_dial` |" in md and "### `relayed_dial`" in md and "`--no-public-url`" in md
    assert "through the relay 70.0 [60.0–80.0]" in md and "ratio 1.75." in md
    assert "1 f0mesh round(s) failed and were run again" in md


def test_engine_budget_runs_both_engines_with_real_crypto() -> None:
    """message_rate_crypto's budget line: each engine really published or accepted every envelope."""
    from bench.validation import engine_budget

    budget = engine_budget(40)
    assert set(budget) == {"sign_us", "verify_us", "sender_engine_us", "receiver_engine_us"}
    assert all(v > 0 for v in budget.values())


def test_engine_pair_delivers_every_envelope_both_ways_of_publishing() -> None:
    from bench.engine_pair import run

    for batch in (False, True):
        assert asyncio.run(run(130, stub=True, batch=batch)) > 0  # raises if an envelope or ack is missing
