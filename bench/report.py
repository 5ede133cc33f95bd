"""results.json and RESULTS.md: the figures, the machine they were measured on, and how."""

from __future__ import annotations

import contextlib
import json
import os
import platform
import subprocess
import time
from importlib import metadata
from pathlib import Path
from typing import Any

from bench.common import REPO, summarize

METHODS: dict[str, str] = {
    "setup": (
        "Client-side wall time of one HTTP request that returns once a new link's two channels are open. "
        "f0mesh: `POST /dial {url}` between two `f0mesh up` processes (it fetches the peer's /healthz, "
        "signs the offer, the peer verifies it and answers signed, ICE/DTLS/SCTP, then a hello on `ctl`); "
        "each repeat dials, then `DELETE /api/mesh-rtc/links/{peer}` and waits until the other side "
        "shows the link closed. Baseline: `POST /connect {url}` on a `bench/raw_peer.py` process, which "
        "creates an RTCPeerConnection with the same two negotiated channels, POSTs the unsigned offer to "
        "the other raw peer's /offer, applies the answer and waits until both channels are open; then "
        "closes the connection. One warm-up round per side is not recorded."
    ),
    "throughput": (
        "Payload bytes per second (1 MB = 10^6 bytes) from one process to another, measured from the "
        "first message handed to the channel until the receiver's ack of the last one arrived. f0mesh: "
        "two `f0mesh.node.Node` processes (`bench/node_peer.py`: the same Node and FastAPI app as "
        "`f0mesh up` plus a bench-only route), linked with `POST /dial`; the sender awaits "
        "`link.framed.send()` of 1 MiB wire messages one after another (msgpack "
        '`{"t": "bench.data", "d": <1 MiB>}`, chunked by FramedChannel into 16 KiB frames); the '
        "receiver counts payload bytes in a wrapper around `Node.link_message`, i.e. after reassembly, "
        "wire decoding and dispatch. Baseline: plain aiortc, 16 KiB binary messages, waiting on "
        "`bufferedamountlow` above the same high/low marks f0mesh uses (128/32 KiB)."
    ),
    "message_rate": (
        "Small messages per second, counted by the receiver. f0mesh: 100-byte payloads as wire messages "
        '(`{"t": "bench.m", "d": <100 bytes>}`, 115 bytes encoded) sent with up to 1024 `framed.send()` '
        "calls in flight, so FramedChannel batches them into shared frames; received through the link's "
        "frame decoding into the node's message handler, as in `throughput`. This measures the link "
        "layer only: no signatures, no gossip envelope, no seen-cache. Baseline: plain aiortc, one "
        "DataChannel message per 100-byte payload, with the same backpressure as `throughput`."
    ),
    "dead_peer": (
        "Seconds from SIGKILL of one peer until the survivor reports the link dead, polled every 50 ms. "
        "f0mesh: two `f0mesh up` processes, linked for 1 s, kill one, poll the survivor's "
        "`GET /api/mesh-rtc/links` until the link's state is \"failed\" (f0mesh's heartbeat, default "
        "`--heartbeat-timeout 4`). Baseline: two raw peers, kill one, poll the survivor until its "
        'pc.connectionState is "closed" or "failed" (aiortc/aioice consent checks: 6 failures at ~5 s). '
        "The baseline pairs wait in the background, all at once, while the f0mesh repeats and then "
        "`link_memory` (which times nothing) run; a baseline that has not noticed within the cap counts "
        "as the cap."
    ),
    "link_memory": (
        "VmRSS (kB as /proc reports it, i.e. KiB) that one hub process gains per additional open link. "
        "The hub first links to one warm-up peer (one-time costs: first certificate, lazy imports, "
        "allocator arenas); an f0mesh hub also waits until it is 11 s old, past its first two 5-second "
        "trust refreshes (the first imports networkx and scipy, ~30 MB, linked or not). 2 s after the "
        "warm-up link RSS is read (the median of 6 reads 0.2 s apart that agree "
        "within 128 kB), then the hub links to K more peers, each a separate process, and 2 s later RSS "
        "is read the same way; figure = difference / K. f0mesh: `f0mesh up` "
        "processes with the degree manager off (`--d-lo 0 --d 0`) so only the hub's links exist; "
        "the hub dials with `POST /dial`. Baseline: raw peers, the hub connects with `POST /connect`."
    ),
}


def machine() -> dict[str, Any]:
    cpu = "unknown"
    mem_kb = 0
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
        load = Path("/proc/loadavg").read_text().split()[:3]
    except OSError:
        load = []
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "kernel": f"{platform.system()} {platform.release()}",
        "memory_gib": round(mem_kb / 1024 / 1024, 1),
        "loadavg_at_start": " ".join(load),
    }


def versions() -> dict[str, str]:
    import f0mesh

    def dist(name: str) -> str:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return "?"

    commit = ""
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        args = ["git", "rev-parse", "--short", "HEAD"]  # read-only
        commit = subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=5).stdout.strip()
    return {
        "python": platform.python_version(),
        "aiortc": dist("aiortc"),
        "aioice": dist("aioice"),
        "f0mesh": f"{f0mesh.__version__} (commit {commit or '?'}, working tree may differ)",
    }


def _fmt(x: float) -> str:
    if abs(x) >= 100:
        return f"{x:.0f}"
    if abs(x) >= 10:
        return f"{x:.1f}"
    return f"{x:.2f}"


def _cell(values: list[float]) -> str:
    s = summarize(values)
    return f"{_fmt(s['median'])} [{_fmt(s['min'])}–{_fmt(s['max'])}] IQR {_fmt(s['q1'])}–{_fmt(s['q3'])}"


def _ints(values: list[float]) -> str:
    return "[" + ", ".join(f"{v:.0f}" for v in values) + "]"


def _extra_notes(key: str, fig: dict[str, Any]) -> list[str]:
    samples = fig["samples"]
    notes: list[str] = []
    if samples.get("round_ratios"):
        notes.append(
            f"Ratio per round (both sides back to back): {_cell(samples['round_ratios'])}; "
            f"all rounds: {', '.join(f'{r:.2f}' for r in samples['round_ratios'])}."
        )
    if key == "setup":
        api, inproc = samples["f0mesh_api_setup_ms"], samples["baseline_inprocess_setup_ms"]
        s_api, s_in = summarize(api)["median"], summarize(inproc)["median"]
        notes.append(
            f"Secondary: `setup_ms` as the dialling process measures it (link object created → open, "
            f"without /healthz and HTTP to the client): f0mesh {_cell(api)} ms; the baseline's in-process "
            f"equivalent (pc created → both channels open) {_cell(inproc)} ms; ratio {s_api / s_in:.2f}."
        )
    if key == "setup" and samples.get("f0mesh_peer_saw_failed"):
        notes.append(
            f"In {samples['f0mesh_peer_saw_failed']} of {samples['f0mesh_cycles']} f0mesh cycles the dialled "
            f"node saw the DELETEd link as failed ({', '.join(samples['f0mesh_peer_failed_reasons'])}) "
            "instead of closed by its peer: the final bye did not arrive before the channel closed, and "
            "that node would redial within ~1 s, bringing back a link closed for good. The bench cancels "
            "that redial with a DELETE on the dialled node before the next round."
        )
    for side in ("f0mesh", "baseline"):
        failed = samples.get(f"{side}_failed_rounds")
        if failed:
            notes.append(
                f"{len(failed)} {side} round(s) failed and were run again (not counted in the figure): "
                + "; ".join(f"`{reason}`" for reason in failed)
            )
    if key == "throughput":
        notes.append(f"Payload per repeat: {samples['payload_bytes'] / 1024 / 1024:.0f} MiB.")
    if key == "message_rate":
        notes.append(f"Messages per repeat: {samples['messages']}.")
    if "per_cpu_second_f0mesh" in samples:
        f0, base = samples["per_cpu_second_f0mesh"], samples["per_cpu_second_baseline"]
        ratio = summarize(f0)["median"] / summarize(base)["median"]
        notes.append(
            f"CPU-normalised (the same work per CPU-second of the sending and receiving processes, "
            f"user + system, which a busy neighbour distorts far less than wall time): f0mesh {_cell(f0)}, "
            f"baseline {_cell(base)} {fig['unit'].split('/')[0]} per CPU-second; ratio {ratio:.2f}."
        )
    if "udp_rcvbuf_errors_f0mesh" in samples:
        f0, base = samples["udp_rcvbuf_errors_f0mesh"], samples["udp_rcvbuf_errors_baseline"]
        notes.append(
            "UDP datagrams dropped because a receiving socket's buffer was full, per repeat "
            f"(`RcvbufErrors` of /proc/net/snmp, whole network namespace): f0mesh {_ints(f0)}, "
            f"baseline {_ints(base)}. Each drop costs aiortc's SCTP a retransmission, so many drops "
            "mean a rate set by recovery rather than by CPU, and a wide spread."
        )
    if key == "dead_peer" and samples.get("baseline_capped"):
        notes.append(
            f"{samples['baseline_capped']} baseline repeat(s) had not noticed after the "
            f"{samples['baseline_cap_s']:.0f} s cap and count as the cap: the true ratio is lower."
        )
    if key == "link_memory":
        notes.append(f"K = {samples['links']} links per repeat.")
    return notes


def write(results: dict[str, Any], out_json: Path, out_md: Path, meta: dict[str, Any]) -> None:
    out_json.parent.mkdir(parents=True, exist_ok=True)
    out_json.write_text(json.dumps(results, indent=2, allow_nan=False) + "\n")
    out_md.write_text(markdown(results, meta))


def markdown(results: dict[str, Any], meta: dict[str, Any]) -> str:
    m, v = meta["machine"], meta["versions"]
    lines = [
        "# f0mesh benchmark results",
        "",
        f"- Date: {meta['date']} ({meta['mode']} run, {meta['duration_s']:.0f} s; `{meta['command']}`)",
        f"- Machine: {m['cpu']}, {m['cores']} cores, {m['kernel']}, {m['memory_gib']} GiB RAM, "
        f"load average at start {m['loadavg_at_start']}",
        f"- Versions: Python {v['python']}, aiortc {v['aiortc']}, aioice {v['aioice']}, f0mesh {v['f0mesh']}",
        "",
        "Each cell: median [min–max] IQR q1–q3 over the repeats. ratio = f0mesh median / baseline median, "
        "both measured in this run with repeats interleaved; the machine is shared, so compare ratios, "
        "not absolute numbers across runs.",
        "",
        "| key | unit | f0mesh | baseline | ratio | goal | met | repeats |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for key, fig in results.items():
        s = fig["samples"]
        lines.append(
            f"| `{key}` | {fig['unit']} | {_cell(s['f0mesh'])} | {_cell(s['baseline'])} | "
            f"{fig['ratio']:.3f} | {fig['goal']} | {'yes' if fig['met'] else '**no**'} | {fig['repeats']} |"
        )
    lines += ["", "## What is measured", ""]
    for key, fig in results.items():
        lines += [f"### `{key}`", "", METHODS.get(key, ""), ""]
        for note in _extra_notes(key, fig):
            lines += [note, ""]
    failed = meta.get("failed") or {}
    if failed:
        lines += ["## Not measured in this run", ""]
        lines += [f"- `{key}`: {why}" for key, why in failed.items()]
        lines.append("")
    return "\n".join(lines)


def now_utc() -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
