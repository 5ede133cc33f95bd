"""What an idle mesh costs each node: CPU from /proc, and frames and gossip messages per second.

Grows a mesh of N `f0mesh up --profile large` nodes as the gossip bench does (bench/mesh.py), waits
until it has formed, then reads every node's counters (/metrics), idles WINDOW seconds and reads
them again. Runs whatever code PYTHONPATH gives the children, so old and new code are measured by
the same script: ``PYTHONPATH=/path/to/checkout python bench/idle_cost.py --nodes 16``. Counters a
version lacks are left out of its table.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import tempfile
import time
from collections import Counter
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from bench.common import Procs, cpu_seconds
from bench.mesh import TOPIC, Mesh

# counters read per node, summed over their labels, by the short name printed
_COUNTERS = {
    "f0mesh_link_sent_frames": "ctl_frames",
    "f0mesh_gossip_sent_envelopes": "envelopes",
    "f0mesh_gossip_ihave_sent": "ihave",
    "f0mesh_gossip_idontwant_sent": "idontwant",
    "f0mesh_gossip_topic_messages_delivered": "delivered",
    "f0mesh_gossip_topic_messages_duplicate": "duplicates",
}
_BY_TYPE = "f0mesh_gossip_transport_sent_messages"


def scrape(node: object) -> Counter[str]:
    text = node.http.get("/metrics", timeout=10).text  # type: ignore[attr-defined]
    out: Counter[str] = Counter()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if not sample.name.endswith("_total"):
                continue
            base = sample.name[: -len("_total")]
            if base in _COUNTERS:
                out[_COUNTERS[base]] += sample.value
            if base == "f0mesh_gossip_topic_messages_delivered":
                out[f"delivered.{sample.labels['topic']}"] += sample.value
            elif base == _BY_TYPE:
                out[f"sent.{sample.labels['type']}"] += sample.value
    return out


def measure(nodes: int, window: float, workdir: Path) -> dict[str, object]:
    with Procs(workdir) as procs:
        mesh = Mesh(procs, random.Random(12))
        mesh.grow(nodes, 120.0 + 2 * nodes)
        links = mesh.wait_formed(TOPIC, 120.0 + 4 * nodes)
        pids = [node.pid for node in mesh.nodes]
        before = [scrape(node) for node in mesh.nodes]
        cpu0 = [cpu_seconds([pid]) for pid in pids]
        t0 = time.monotonic()
        time.sleep(window)
        elapsed = time.monotonic() - t0
        cpu1 = [cpu_seconds([pid]) for pid in pids]
        after = [scrape(node) for node in mesh.nodes]
        rates: dict[str, list[float]] = {}
        for b, a in zip(before, after, strict=True):
            for key in a:
                rates.setdefault(key, []).append((a[key] - b[key]) / elapsed)
        cpu = [100.0 * (c1 - c0) / elapsed for c0, c1 in zip(cpu0, cpu1, strict=True)]
        return {
            "nodes": nodes,
            "window_s": round(elapsed, 1),
            "links_per_node": statistics.mean(links),
            "cpu_pct_per_node_median": round(statistics.median(cpu), 2),
            "cpu_pct_total": round(sum(cpu), 1),
            "per_node_per_s_mean": {k: round(statistics.mean(v), 3) for k, v in sorted(rates.items())},
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=16)
    parser.add_argument("--window", type=float, default=60.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="f0mesh-idle-") as tmp:
        print(json.dumps(measure(args.nodes, args.window, Path(tmp)), indent=1))


if __name__ == "__main__":
    main()
