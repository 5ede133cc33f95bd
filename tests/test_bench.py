"""Smoke tests of the benchmark suite: its cheapest figures run end to end and write the agreed shape,
and the report renders the keys that need a mesh (gossip) or a memory run (node_rss_idle).

Timing values are never asserted: this machine is shared, and the figures are for people to read.
"""

from __future__ import annotations

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
    """gossip and node_rss_idle have no goal (met is None); a mesh size that failed is shown as such."""
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
        "node_rss_idle": reported([150_000.0], [90_000.0], unit="kB", extra={"links": 8}),
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
    assert "| `gossip` |" in md and "| `node_rss_idle` |" in md
    assert "| 16 | not measured: TimeoutError: not ready |" in md
    assert "N = 32" in md
    assert json.loads((tmp_path / "results.json").read_text())["gossip"]["samples"]["by_n"]["8"] == n8
