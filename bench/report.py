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
        "Signed gossip messages per second over one link, counted by the receiving application. f0mesh: "
        "two Node processes as in `throughput`; the sender calls `Node.publish()` (what "
        "`POST /api/gossip` calls) with as many publishes in flight as the node admits "
        "(`max_pending_publishes`, 128), each a 100-byte JSON string "
        "payload: an Ed25519-signed envelope, committed to the sender's SQLite store with its audit "
        "row, then pushed to the one neighbour in batches of up to 64 envelopes per ctl message, with "
        "ack and retry. The receiver runs its full inbound pipeline on each (decode, signature, replay "
        "window and HLC, seen-cache, rate limits, SQLite commit with an audit row, ack) and counts it in a "
        "gossip subscription, i.e. once accepted and committed. The receiver's rate limits are raised "
        "for the bench: by design they cap one origin at 200 msgs/s, which would measure the policy, "
        "not the cost (the checks still run). Baseline: plain aiortc, one DataChannel message per "
        "100-byte payload, with the same backpressure as `throughput`: no signature, no store, no ack."
    ),
    "validation": (
        "Inbound envelopes one core validates and accepts per CPU-second. f0mesh: a real GossipEngine "
        "in the bench process fed `msgs` batches of 64 envelopes from 16 origins, as a link delivers "
        "them: size, strict canonical decode, signature (PeerId -> public key -> Ed25519 verify), replay "
        "window and HLC, seen-cache, rate limits (unlimited, as in `message_rate`), then accept: audit "
        "row, write-behind commit into the in-memory store, ack queued. Baseline: "
        "`Ed25519PublicKey.verify` over the same signed bytes with the keys loaded beforehand. Both "
        "per CPU-second of the thread (`time.thread_time`); wall-clock rates are in results.json."
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
    "gossip": (
        "Spread of a published message through a mesh of N `f0mesh up` processes on this host (no goal; "
        "reported next to the one-hop RTT of the same mesh). The mesh grows in place, 8 then 16 then 32 "
        "nodes, each bootstrapping from node 0 and linking by peer exchange and its degree manager; "
        "every node runs the calm flags of `f0mesh demo` for large meshes on two cores "
        "(`f0mesh.demo.Mesh.node_flags`), the same at every N. Once "
        "every node has 3 links, random nodes publish one message every 0.25 s via `POST /api/gossip`. "
        "Time to last delivery = the latest `received_at` among the other N-1 nodes minus the "
        "publisher's own `received_at` (its commit), one host clock; hops from "
        "`/api/gossip/messages` (0 = straight from the origin); duplicates from "
        "`/api/audit?event=duplicate`; one-hop RTT = median QoS `rtt_ms` of the mesh's open links. "
        "The table row shows N=8: f0mesh = time to last delivery, baseline = one-hop RTT."
    ),
    "node_rss_idle": (
        "Absolute VmRSS (kB) of a node holding 8 open, idle links (no goal): the `link_memory` hub's "
        "second reading (1 warm-up + 7 links, read 2 s after the last dial; 1 + 4 = 5 links in --quick). "
        "Baseline: the raw aiortc hub with as many connections, read the same way."
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

PROFILE_INTRO = (
    "pyinstrument (1 ms sampling, whole event loop) in the sending and the receiving Node process "
    "during one extra, unrecorded `message_rate` round."
)
PROFILE_ACTIONS = """\
"via -" marks SQLAlchemy work run inside its greenlet, where the calling f0mesh frame is not on the
stack; it is `Store.commit_gossip` (the store's only multi-row INSERT, see `_insert_ignore` above).
The three largest costs, the same in every profile taken for issue #12:

1. **SQLAlchemy compiling each gossip commit's INSERT** (`compiler.bindparam_string`,
   `visit_bindparam`, `crud._extend_values_for_multiparams`, `coercions.expect`, `elements.__init__`:
   together ~20-25 % of both processes' busy time). `Store.commit_gossip` builds
   `insert(table).values(rows).on_conflict_do_nothing()`: a new multi-row statement for every batch,
   which the compiled-statement cache cannot reuse, with one bind parameter per column and row.
   Done: `Store.commit_gossip` now executes one cached statement with the row list (executemany);
   measured first in a scratch copy, `message_rate` per CPU-second +63 % (1375 -> 2240), and the
   full-run `message_rate` went from 2201 to 3614 msgs/s (ratio 0.18 -> 0.26).
2. **Ed25519**: `sign` in the sender (~7 %), `verify` in the receiver (~14 %). Inherent: every
   envelope is signed by its origin and verified on receipt (StrictSign). Not changed; only a
   signature per batch (a change of the envelope contract) or verification on more cores would cut it.
3. **PeerId -> public key**: base58 decoding in `identity.public_key_from_peer_id` (~8 % of the
   receiver), twice per envelope (`Envelope.decode` checks the origin with `is_peer_id`, `verify`
   decodes it again). Done: the decoding is cached (`functools.lru_cache(4096)`, errors not cached);
   `validation` ratio 0.59 -> 0.72 in a scratch copy, 0.63 -> 0.76 between two full runs.
"""

# What holds a goal back, shown under the key whenever this run did not meet it.
NOT_MET: dict[str, str] = {
    "message_rate": (
        "**Not met, and not reachable with a signature verified per envelope.** The goal (2x, from "
        "batching) was set when this key counted unsigned link messages; it now counts signed gossip, "
        "stored and acknowledged on both sides. Plain aiortc spends ~125-300 us of CPU (both processes) "
        "per 100-byte message here; f0mesh spends more than that on the Ed25519 verification alone "
        "(~106 us, see `validation`), plus signing (~50 us), two SQLite commits with audit rows, and "
        "the ack. Batching already shares DataChannel messages and SCTP packets (64 envelopes per ctl "
        "message). Applied from the profile: the cached gossip INSERT and the PeerId key cache (ratio "
        "0.18 -> 0.26). What would lift it further: only a protocol change, one signature per batch of "
        "envelopes."
    ),
    "throughput": (
        "What holds it back: not CPU. Per CPU-second of both processes f0mesh moves the same bytes as "
        "plain aiortc (ratio ~0.9-1.0 in the runs for issue #12, see above). The wall-clock rate on "
        "loopback is set by aiortc's SCTP recovering from UDP datagrams the kernel dropped at a full "
        "receive buffer (`RcvbufErrors` above) while the receiving process waits for a CPU shared with "
        "other work: f0mesh's receiver does more per frame (reassembly, decode, dispatch), so it drains "
        "its socket later under load. Not measured here, but the likely lift: a larger receive buffer "
        "on aioice's UDP sockets (SO_RCVBUF, in f0mesh/rtc); run to run the wall-clock ratio spans "
        "~0.8-1.1."
    ),
    "link_memory": (
        "What it really is (measured for issue #12 with an in-process hub, /proc/self/smaps, "
        "tracemalloc and malloc_trim): the live cost of a link is about the same as plain aiortc's. "
        "Python objects grow by ~213 KiB per link (tracemalloc: aiortc SCTP, envelopes and msgpack of "
        "the catch-up gossip, framing, asyncio); SQLAlchemy's statement cache does not grow (net "
        "-49 KiB) and scipy's import (~30 MB) lands before the first reading (one 256 kB page-in of "
        "`_sparsetools` code can fall inside it). The rest is glibc heap high-water: every new link "
        "triggers a burst of work (signed signaling, hello, peer exchange, anti-entropy, telemetry, "
        "store writes), and the freed memory stays in the process. `malloc_trim(0)` right after the "
        "reading gave back 1.6-2.1 MB, more than all K links had added; the per-link figure of the "
        "same hub was 2-217 kB on a quiet machine and 835 kB under a load average of 65. What would "
        "likely lift it (not measured as a patch): a `malloc_trim(0)` after each burst of link changes "
        "(the node already schedules one telemetry publish per burst)."
    ),
    "validation": (
        "What holds it back: per envelope, beyond the Ed25519 verification itself, the PeerId's base58 "
        "decoding (twice), the strict canonical re-encoding check, the message id (sha256 + base32) and "
        "the accept path. The PeerId key cache (applied) lifted the ratio from ~0.6 to ~0.75."
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


def _gossip_table(by_n: dict[str, Any]) -> list[str]:
    rows = [
        "| N | messages | last delivery p50 (ms) | p99 (ms) | hops p99 | duplicates / node / msg "
        "| one-hop RTT (ms) | incomplete | links per node | mesh formed (s) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for n, r in by_n.items():
        if "error" in r:
            rows.append(f"| {n} | not measured: {r['error']} |  |  |  |  |  |  |  |  |")
            continue
        links = r["links_per_node"]
        rows.append(
            f"| {n} | {r['messages']} | {_fmt(r['last_delivery_ms_p50'])} "
            f"| {_fmt(r['last_delivery_ms_p99'])} "
            f"| {r['hops_p99']:g} | {r['duplicates_per_node_per_message']:.2f} | {_fmt(r['one_hop_rtt_ms'])} "
            f"| {r['incomplete']} | {min(links)}–{max(links)} | {r['mesh_formed_s']:.0f} |"
        )
    missing = [str(n) for n in (8, 16, 32) if str(n) not in by_n]
    if missing:
        rows += ["", f"Not reached (a smaller mesh failed first): N = {', '.join(missing)}."]
    return rows


def _profile(samples: dict[str, Any]) -> list[str]:
    lines = []
    for role, prof in samples.items():
        busy, idle = prof["busy_s"], prof["idle_s"]
        lines.append(
            f"- {role}: {busy:.1f} s busy, {idle:.1f} s idle in epoll; top costs by own time "
            "(function — via the innermost f0mesh function above it — share of busy time):"
        )
        lines += [
            f"  {i}. `{c['function']}` — via `{c['via']}` — {100 * c['share']:.0f} %"
            for i, c in enumerate(prof["costs"], 1)
        ]
    return lines


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
            "that redial with a DELETE on the dialled node, then lifts the hold that DELETE puts on the "
            "dialler's offers (`DELETE /api/peers/{id}/block`) before the next round."
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
    if key == "validation":
        wf, wb = samples["wall_f0mesh"], samples["wall_baseline"]
        notes.append(
            f"Envelopes per repeat: {samples['envelopes']}. Wall-clock rates (a busy neighbour shows "
            f"here): f0mesh {_cell(wf)}, baseline {_cell(wb)} per second."
        )
    if key == "gossip":
        notes += ["\n".join(_gossip_table(samples["by_n"]))]
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
    if key in NOT_MET and fig["met"] is False:
        notes.append(NOT_MET[key])
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
            f"{fig['ratio']:.3f} | {fig['goal']} | {_met(fig['met'])} | {fig['repeats']} |"
        )
    lines += ["", "## What is measured", ""]
    for key, fig in results.items():
        lines += [f"### `{key}`", "", METHODS.get(key, ""), ""]
        for note in _extra_notes(key, fig):
            lines += [note, ""]
    profile = results.get("message_rate", {}).get("samples", {}).get("profile")
    if profile:
        lines += ["## Profile of the small-message path", "", PROFILE_INTRO, ""]
        lines += [*_profile(profile), "", PROFILE_ACTIONS, ""]
    failed = meta.get("failed") or {}
    if failed:
        lines += ["## Not measured in this run", ""]
        lines += [f"- `{key}`: {why}" for key, why in failed.items()]
        lines.append("")
    return "\n".join(lines)


def _met(met: bool | None) -> str:
    return "–" if met is None else "yes" if met else "**no**"


def now_utc() -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
