"""PNG plots of the experiments' results (matplotlib, Agg backend: no display needed).

Each plot is drawn only when its results are present, so `--out` works for one experiment as well
as for the whole suite that docs/scale.md shows.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

from f0mesh.sim import serf

LOSS_COLOURS = {0.0: "tab:blue", 0.1: "tab:orange", 0.5: "tab:red"}
SIZE_COLOURS = {100: "tab:green", 1000: "tab:blue", 10_000: "tab:purple"}


def write_outputs(results: dict[str, Any], out: str | os.PathLike[str]) -> list[Path]:
    """Write ``<experiment>.json`` and every plot the results allow into ``out``; returns the files."""
    directory = Path(out)
    directory.mkdir(parents=True, exist_ok=True)
    written = [directory / f"{results['experiment']}.json"]
    written[0].write_text(json.dumps(results, indent=1, default=str) + "\n")
    try:
        import matplotlib
    except ImportError:
        raise ValueError(
            f"wrote {written[0]}; the plots need matplotlib: pip install 'f0mesh[sim]'"
        ) from None

    matplotlib.use("Agg")
    coverage = results.get("coverage") or results.get("broadcast") or []
    if coverage:
        written.append(_coverage_curves(coverage, directory / "coverage_time.png"))
        written.append(_hops(coverage, results.get("coverage_tuned", []), directory / "coverage_hops.png"))
    recommended = results.get("recommended", [])
    if results.get("coverage") and results.get("coverage_tuned"):
        written.append(
            _thresholds(
                results["coverage"],
                results["coverage_tuned"],
                [r for r in recommended if not r["scenario"]["sybils"]],
                directory / "thresholds.png",
            )
        )
    if results.get("sybil"):
        written.append(_sybil(results["sybil"], directory / "sybil_delivery.png", "engine defaults"))
    if any(r["scenario"]["sybils"] for r in recommended):
        runs = [r for r in recommended if r["scenario"]["sybils"]]
        written.append(
            _sybil(runs, directory / "sybil_delivery_recommended.png", "fanout 6, ttl 16, repair 2 s")
        )
    if results.get("fanout"):
        written.append(_fanout(results["fanout"], directory / "fanout_cost.png"))
    if results.get("crdt"):
        written.append(_crdt(results["crdt"], directory / "crdt_heal.png"))
    return written


def _median_message(run: dict[str, Any]) -> dict[str, Any]:
    """The message whose time to 99 % is the median one (unreached counts as slowest)."""
    ranked = sorted(run["messages"], key=lambda m: math.inf if m["t"]["99"] is None else m["t"]["99"])
    return ranked[len(ranked) // 2]


def _save(fig: Any, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return path


def _coverage_curves(runs: list[dict[str, Any]], path: Path) -> Path:
    import matplotlib.pyplot as plt

    losses = sorted({run["scenario"]["loss"] for run in runs})
    fig, axes = plt.subplots(1, len(losses), figsize=(5.2 * len(losses), 4.2), squeeze=False, sharey=True)
    for ax, loss in zip(axes[0], losses, strict=True):
        for run in (r for r in runs if r["scenario"]["loss"] == loss):
            n = run["scenario"]["peers"]
            colour = SIZE_COLOURS.get(n, "black")
            message = _median_message(run)
            xs = [max(p[0], 1e-3) for p in message["curve"]]
            ys = [100 * p[1] for p in message["curve"]]
            ax.step(xs, ys, where="post", color=colour, label=f"f0mesh N={n:,}")
            model = serf.curve(n, fanout=3, loss=loss, until_s=30.0)
            ax.plot(
                [max(t, 1e-3) for t, _ in model],
                [100 * f for _, f in model],
                ":",
                color=colour,
                label=f"Serf model N={n:,}",
            )
        ax.set_xscale("log")
        ax.set_xlim(0.05, 130)
        ax.set_ylim(0, 101)
        ax.set_title(f"loss {loss:.0%}")
        ax.set_xlabel("seconds after publishing (log)")
        ax.grid(True, which="both", alpha=0.3)
    axes[0][0].set_ylabel("peers that delivered (%)")
    axes[0][-1].legend(fontsize=7, loc="lower right")
    fig.suptitle("Coverage over time: f0mesh engine defaults (GossipParams) vs Serf's model")
    return _save(fig, path)


def _hops(runs: list[dict[str, Any]], tuned: list[dict[str, Any]], path: Path) -> Path:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for group, style in ((runs, "-"), (tuned, "--")):
        for run in group:
            sc = run["scenario"]
            if sc["loss"] != 0.0:
                continue
            hist = {int(k): v for k, v in run["summary"]["hop_histogram"].items()}
            total = sum(hist.values())
            xs, ys, cumulative = [], [], 0
            for hop in range(max(hist) + 1):
                cumulative += hist.get(hop, 0)
                xs.append(hop)
                ys.append(100 * cumulative / total)
            ax.step(
                xs,
                ys,
                style,
                where="post",
                color=SIZE_COLOURS.get(sc["peers"], "black"),
                label=f"N={sc['peers']:,} fanout {sc['fanout']} ttl {sc['ttl']}",
            )
    ax.set_xlabel("path length of the first copy (hops)")
    ax.set_ylabel("deliveries within that many hops (%)")
    ax.set_title("Hops to coverage, loss 0 (a repaired copy: its server's path + 1)", fontsize=10)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7)
    return _save(fig, path)


def _thresholds(
    runs: list[dict[str, Any]], tuned: list[dict[str, Any]], recommended: list[dict[str, Any]], path: Path
) -> Path:
    import matplotlib.pyplot as plt

    labels = ("50", "99", "99.9", "100")
    fig, axes = plt.subplots(1, 4, figsize=(17, 4.2), sharey=True)
    for ax, label in zip(axes, labels, strict=True):
        for loss in sorted({r["scenario"]["loss"] for r in runs}):
            colour = LOSS_COLOURS.get(loss, "black")
            for group, style, name in (
                (runs, "o-", "defaults"),
                (tuned, "s--", "fanout 6, ttl 16"),
                (recommended, "^", "+ repair 2 s, lookback 300 s"),
            ):
                points = [
                    (r["scenario"]["peers"], r["summary"]["t"][label])
                    for r in group
                    if r["scenario"]["loss"] == loss and r["summary"]["t"][label] is not None
                ]
                if points:
                    ax.plot(*zip(*points, strict=True), style, color=colour, label=f"{name}, loss {loss:.0%}")
            sizes = sorted({r["scenario"]["peers"] for r in runs})
            model = [serf.time_to(n, float(label) / 100, loss=loss) for n in sizes]
            ax.plot(sizes, model, "x:", color=colour, label=f"Serf model, loss {loss:.0%}")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_title(f"time to {label} % of peers")
        ax.set_xlabel("peers")
        ax.grid(True, which="both", alpha=0.3)
    axes[0].set_ylabel("seconds (median message)")
    axes[-1].legend(fontsize=6)
    return _save(fig, path)


def _sybil(runs: list[dict[str, Any]], path: Path, config: str) -> Path:
    import matplotlib.pyplot as plt

    sizes = sorted({r["scenario"]["peers"] for r in runs})
    fig, axes = plt.subplots(1, len(sizes), figsize=(6.2 * len(sizes), 4.4), squeeze=False, sharey=True)
    colours = {0.1: "tab:green", 0.2: "tab:blue", 0.4: "tab:red"}
    for ax, n in zip(axes[0], sizes, strict=True):
        for run in (r for r in runs if r["scenario"]["peers"] == n):
            sc = run["scenario"]
            at = run["summary"]["at"]
            # the run's checkpoints, in the order the experiment wrote them
            xs = [float(c) for c, share in at.items() if share is not None]
            ys = [100 * share for share in at.values() if share is not None]
            ax.plot(
                xs,
                ys,
                "-o" if sc["selection"] == "trust" else "--x",
                color=colours.get(sc["sybils"], "black"),
                label=f"{sc['sybils']:.0%} Sybils, {sc['selection']}",
            )
        ax.axhline(99, color="grey", lw=0.8, ls=":")
        ax.set_xscale("log")
        ax.set_xlabel("seconds after publishing (log)")
        ax.set_title(f"delivery to honest peers, N={n:,}, {config}", fontsize=10)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7, loc="lower right")
    axes[0][0].set_ylabel("honest peers that delivered (%, mean of messages)")
    return _save(fig, path)


def _fanout(runs: list[dict[str, Any]], path: Path) -> Path:
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.2))
    for n in sorted({r["scenario"]["peers"] for r in runs}):
        group = sorted(
            (r for r in runs if r["scenario"]["peers"] == n), key=lambda r: r["scenario"]["fanout"]
        )
        colour = SIZE_COLOURS.get(n, "black")
        fanouts = [r["scenario"]["fanout"] for r in group]
        left.plot(
            fanouts,
            [r["summary"]["envelopes_per_delivery"] for r in group],
            "o-",
            color=colour,
            label=f"envelopes, N={n:,}",
        )
        left.plot(
            fanouts,
            [r["summary"]["transport_per_delivery"] for r in group],
            "s--",
            color=colour,
            label=f"all messages, N={n:,}",
        )
        for label, style in (("99", "o-"), ("100", "s--")):
            pts = [
                (f, r["summary"]["t"][label])
                for f, r in zip(fanouts, group, strict=True)
                if r["summary"]["t"][label]
            ]
            if pts:
                right.plot(*zip(*pts, strict=True), style, color=colour, label=f"t{label}, N={n:,}")
    left.set_xlabel("fanout")
    left.set_ylabel("sent per peer reached")
    left.set_title("cost: envelope copies, and all transport messages (acks, repair)")
    left.grid(True, alpha=0.3)
    left.legend(fontsize=7)
    right.set_xlabel("fanout")
    right.set_yscale("log")
    right.set_ylabel("seconds (median message)")
    right.set_title("time to 99 % / 100 % (ttl 16, repair 5 s)")
    right.grid(True, which="both", alpha=0.3)
    right.legend(fontsize=7)
    return _save(fig, path)


def _crdt(runs: list[dict[str, Any]], path: Path) -> Path:
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.2))
    for heal, style in ((0, "o-"), (1, "s--")):
        group = sorted(
            (r for r in runs if r["scenario"]["heal_links"] == heal), key=lambda r: r["scenario"]["peers"]
        )
        name = "all cut links return" if heal == 0 else "one bridge link"
        for label, colour in (("50", "tab:blue"), ("100", "tab:red")):
            pts = [(r["scenario"]["peers"], r["t"][label]) for r in group if r["t"][label] is not None]
            if pts:
                left.plot(*zip(*pts, strict=True), style, color=colour, label=f"t{label}, {name}")
        for run in group:
            n = run["scenario"]["peers"]
            right.step(
                [p[0] for p in run["curve"]],
                [100 * p[1] for p in run["curve"]],
                style[1:],
                where="post",
                color=SIZE_COLOURS.get(n, "black"),
                label=f"N={n:,}, {name}",
            )
    left.set_xscale("log")
    left.set_xlabel("peers")
    left.set_ylabel("seconds after the heal")
    left.set_title("LWW map convergence after a partition heals")
    left.grid(True, which="both", alpha=0.3)
    left.legend(fontsize=7)
    right.set_xlabel("seconds after the heal")
    right.set_ylabel("replicas holding every write (%)")
    right.grid(True, alpha=0.3)
    right.legend(fontsize=7)
    return _save(fig, path)
