"""python -m bench [--quick] [--only KEY,...] [--repeats N] [--out DIR|FILE.json] [--keep]"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import report
from bench.common import REPO
from bench.suites import (
    Plan,
    bench_dead_peer,
    bench_gossip,
    bench_libdatachannel,
    bench_libp2p_mesh,
    bench_link_memory,
    bench_setup,
    bench_traffic,
    bench_validation,
)

KEYS = (
    "setup",
    "relayed_dial",
    "throughput",
    "message_rate",
    "message_rate_crypto",
    "validation",
    "link_memory",
    "dead_peer",
    "gossip",
    "node_rss_idle",
    "libp2p_message_rate",
    "libp2p_setup",
    "libp2p_gossip",
    "libp2p_rss_idle",
    "libdatachannel_throughput",
)
# Keys whose f0mesh side is another key's measurement in the same run.
NEEDS = {"libp2p_gossip": "gossip", "libp2p_rss_idle": "node_rss_idle"}


def _outputs(out: Path) -> tuple[Path, Path]:
    if out.suffix == ".json":
        return out, out.with_name("RESULTS.md")
    return out / "results.json", out / "RESULTS.md"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description="f0mesh vs plain aiortc, same run.")
    parser.add_argument("--quick", action="store_true", help="fewer repeats, smaller payloads (< 2 min)")
    parser.add_argument(
        "--only", action="append", default=[], help=f"comma-separated keys of {', '.join(KEYS)}"
    )
    parser.add_argument("--repeats", type=int, default=None, help="repeats per figure (overrides the mode)")
    parser.add_argument(
        "--out", type=Path, default=REPO / "bench", help="directory (or .json path) for results"
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the work directory with every process's log"
    )
    args = parser.parse_args(argv)
    keys = {k.strip() for item in args.only for k in item.split(",") if k.strip()} or set(KEYS)
    unknown = keys - set(KEYS)
    if unknown:
        parser.error(f"unknown key(s) {', '.join(sorted(unknown))}; choose from {', '.join(KEYS)}")
    if args.repeats is not None and args.repeats < 1:
        parser.error("--repeats must be at least 1")

    (REPO / "bench" / ".work").mkdir(exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="run-", dir=REPO / "bench" / ".work"))
    started = time.monotonic()
    meta: dict[str, Any] = {
        "date": report.now_utc(),
        "mode": "quick" if args.quick else "full",
        "command": "python -m bench " + " ".join(sys.argv[1:] if argv is None else argv),
        "machine": report.machine(),
        "versions": report.versions(),
        "failed": {},
    }

    def say(line: str) -> None:
        print(f"[{time.monotonic() - started:6.1f} s] {line}", file=sys.stderr, flush=True)

    plan = Plan(quick=args.quick, repeats=args.repeats, workdir=workdir, say=say)
    results: dict[str, Any] = {}

    def attempt(wanted: set[str], run: Callable[[], dict[str, Any]]) -> None:
        """Run one benchmark; a failure is reported and recorded, and the others still run."""
        wanted &= keys
        if not wanted:
            return
        say(f"running {', '.join(k for k in KEYS if k in wanted)}")
        try:
            results.update(run())
        except Exception as exc:
            traceback.print_exc()
            for key in wanted:
                meta["failed"][key] = f"{type(exc).__name__}: {exc}".splitlines()[0][:300]

    keys |= {NEEDS[k] for k in keys if k in NEEDS}
    attempt({"setup", "libp2p_setup", "relayed_dial"}, lambda: bench_setup(plan, keys))
    traffic = {"throughput", "message_rate", "message_rate_crypto", "libp2p_message_rate"}
    attempt(traffic, lambda: bench_traffic(plan, keys))
    attempt({"validation"}, lambda: bench_validation(plan))
    memory_keys = {"link_memory", "node_rss_idle"}

    def memory() -> None:
        attempt(memory_keys, lambda: bench_link_memory(plan))

    if "dead_peer" in keys:
        # link_memory runs while the baseline of dead_peer waits out aiortc's ~30 s.
        attempt({"dead_peer"}, lambda: bench_dead_peer(plan, meanwhile=memory))
    if not memory_keys & (set(results) | set(meta["failed"])):
        memory()
    attempt({"gossip"}, lambda: bench_gossip(plan))
    attempt({"libp2p_gossip", "libp2p_rss_idle"}, lambda: bench_libp2p_mesh(plan, results))
    attempt({"libdatachannel_throughput"}, lambda: bench_libdatachannel(plan))
    meta["failed"].update({k: why for k, why in plan.failed.items() if k in keys})
    results = {k: results[k] for k in KEYS if k in results and k in keys}
    meta["duration_s"] = time.monotonic() - started
    out_json, out_md = _outputs(args.out)
    report.write(results, out_json, out_md, meta)
    say(f"wrote {out_json} and {out_md}")
    for key, fig in results.items():
        verdict = "reported" if fig["met"] is None else "met" if fig["met"] else "NOT met"
        print(
            f"{key:13s} f0mesh {fig['f0mesh']:>11.3f}  baseline {fig['baseline']:>11.3f} {fig['unit']:7s}"
            f" ratio {fig['ratio']:7.3f}  {fig['goal']:15s} {verdict}"
        )
    if meta["failed"] or args.keep:
        say(f"process logs kept in {workdir}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    return 1 if meta["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
