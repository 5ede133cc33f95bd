"""Smoke test of the benchmark suite: its cheapest figure runs end to end and writes the agreed shape.

Timing values are never asserted: this machine is shared, and the figures are for people to read.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_bench_setup_writes_results(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--only", "setup", "--repeats", "1", "--out", str(tmp_path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads((tmp_path / "results.json").read_text())
    assert list(results) == ["setup"]
    fig = results["setup"]
    for key in ("f0mesh", "baseline", "ratio"):
        assert isinstance(fig[key], int | float) and fig[key] > 0, fig
    assert isinstance(fig["met"], bool)
    assert fig["goal"] == "ratio <= 1.5" and fig["unit"] == "ms" and fig["repeats"] == 1
    assert len(fig["samples"]["f0mesh"]) == 1 and len(fig["samples"]["baseline"]) == 1
    assert "| `setup` |" in (tmp_path / "RESULTS.md").read_text()
