"""`gossip`: spread of published messages through a mesh of N `f0mesh up` processes on this host.

The mesh grows in place (8, then 16, then 32 nodes; every node bootstraps from node 0 and finds the
others by peer exchange and its degree manager), so each larger N pays only for its new processes.
All nodes run the `large` profile f0mesh's demo uses for large meshes on two cores, the same at every N,
so only N changes, and subscribe to the bench's topic at start (`--topic`), as an application's nodes
would: their topic mesh is formed before the first message, not by it. Messages are sent only once
the mesh has formed: every node with MIN_LINKS links and as many peers in its topic mesh (or all its
links, if fewer). Each message is published by a random node with `POST /api/gossip`; its time to
the last delivery is the latest `received_at` among the other nodes minus the publisher's own
`received_at` (its commit), all on this host's clock. Hops and duplicates come from each node's
`/api/gossip/messages` and `/api/audit?event=duplicate`, the road each first copy took (a push, or an
IWANT answering a digest) from `/api/audit?event=received`; the one-hop RTT is the median QoS
`rtt_ms` of the open links in the same mesh, read right after the messages. The idle CPU of the
nodes (user + system time over IDLE_WINDOW_S before the first message) says how much of the two
cores the mesh leaves to the messages.
"""

from __future__ import annotations

import contextlib
import random
import statistics
import time
from typing import Any

import httpx

from bench.common import Proc, Procs, cpu_seconds, wait_until

# The demo's profile for meshes above 12 nodes on two cores, at every N here.
PROFILE = "large"
TOPIC = "bench.gossip"
MIN_LINKS = 3
IDLE_WINDOW_S = 10.0
PUBLISH_GAP_S = 0.25
RTT_TIMEOUT_S = 30.0


def _quantile(values: list[float], q: float) -> float:
    xs = sorted(values)
    return xs[min(len(xs) - 1, max(0, round(q * (len(xs) - 1))))]


def _open_links(node: Proc) -> list[dict[str, Any]]:
    try:
        return [link for link in node.get("/api/mesh-rtc/links")["links"] if link["state"] == "open"]
    except (httpx.HTTPError, ValueError, KeyError):
        return []


class Mesh:
    """The growing mesh; its processes belong to ``procs`` and die with it."""

    def __init__(self, procs: Procs, rng: random.Random) -> None:
        self.procs = procs
        self.rng = rng
        self.nodes: list[Proc] = []

    def grow(self, n: int, ready_timeout: float) -> None:
        for i in range(len(self.nodes), n):
            flags: dict[str, Any] = {"--topic": [TOPIC]}
            if self.nodes:
                flags["--bootstrap"] = [self.nodes[0].url]
            self.nodes.append(self.procs.f0mesh_up(f"g{i}", flags, profile=PROFILE))
            if i == 0:
                self.procs.wait_ready(ready_timeout)
        self.procs.wait_ready(ready_timeout)

    def link_counts(self) -> list[int]:
        return [len(_open_links(node)) for node in self.nodes]

    def unformed(self, topic: str) -> list[str]:
        """Each node, as "name links/mesh", with fewer than MIN_LINKS links (all the others, in a
        smaller mesh) or a topic mesh below min(MIN_LINKS, links): a mesh of 3 in a profile whose
        nodes keep 3 to 6 links; a GRAFT refused in a backoff can hold one below d_lo for a minute."""
        want = min(MIN_LINKS, len(self.nodes) - 1)
        out = []
        for node in self.nodes:
            links = len(_open_links(node))
            try:
                peers = node.get("/api/gossip/mesh").get(topic, {}).get("peers", [])
            except (httpx.HTTPError, ValueError):
                peers = []
            if links < want or len(peers) < min(MIN_LINKS, links):
                out.append(f"{node.name} {links}/{len(peers)}")
        return out

    def wait_formed(self, topic: str, timeout: float) -> list[int]:
        """Wait until no node is unformed; TimeoutError names those still unformed."""
        deadline = time.monotonic() + timeout
        while unformed := self.unformed(topic):
            if time.monotonic() >= deadline:
                raise TimeoutError(
                    f"mesh not formed after {timeout:.0f} s (node links/{topic} mesh): {', '.join(unformed)}"
                )
            time.sleep(1.0)
        return self.link_counts()

    def idle_cpu_pct(self, window: float) -> list[float]:
        """Each node's CPU use (% of one core) while nothing is published."""
        pids = [node.pid for node in self.nodes]
        before = [cpu_seconds([pid]) for pid in pids]
        t0 = time.monotonic()
        time.sleep(window)
        elapsed = time.monotonic() - t0
        return [100.0 * (cpu_seconds([pid]) - b) / elapsed for pid, b in zip(pids, before, strict=True)]

    def one_hop_rtt_ms(self) -> list[float]:
        return [float(link["rtt_ms"]) for node in self.nodes for link in _open_links(node) if link["rtt_ms"]]

    def publish(self, topic: str, count: int) -> dict[str, int]:
        """Message id -> index of the publishing node."""
        published: dict[str, int] = {}
        for j in range(count):
            i = self.rng.randrange(len(self.nodes))
            body = self.nodes[i].post("/api/gossip", {"topic": topic, "payload": {"n": j}}, timeout=30)
            published[body["id"]] = i
            time.sleep(PUBLISH_GAP_S)
        return published

    def received(self, topic: str) -> list[dict[str, dict[str, Any]]]:
        """Per node: message id -> its row, for the topic."""
        out = []
        for node in self.nodes:
            rows = node.get(f"/api/gossip/messages?topic={topic}&limit=10000")["messages"]
            out.append({row["id"]: row for row in rows})
        return out

    def roads(self, ids: set[str]) -> list[dict[str, str]]:
        """Per node: message id -> how its first copy came ("push", or the audit row's reason)."""
        out = []
        for node in self.nodes:
            entries = node.get("/api/audit?event=received&limit=10000")["entries"]
            out.append({e["message_id"]: e["reason"] or "push" for e in entries if e["message_id"] in ids})
        return out

    def duplicates(self, ids: set[str]) -> int:
        total = 0
        for node in self.nodes:
            entries = node.get("/api/audit?event=duplicate&limit=10000")["entries"]
            total += sum(1 for e in entries if e["message_id"] in ids)
        return total


def measure_n(mesh: Mesh, n: int, messages: int, ready_timeout: float) -> dict[str, Any]:
    """Grow to ``n`` nodes, publish ``messages``, and summarise their spread."""
    t0 = time.monotonic()
    mesh.grow(n, ready_timeout)
    links = mesh.wait_formed(TOPIC, 120.0 + 4 * n)
    formed_s = time.monotonic() - t0
    idle = mesh.idle_cpu_pct(IDLE_WINDOW_S)
    published = mesh.publish(TOPIC, messages)
    ids = set(published)

    def all_delivered() -> bool:
        return all(ids <= set(rows) for rows in mesh.received(TOPIC))

    with contextlib.suppress(TimeoutError):  # what did not arrive is reported as incomplete
        wait_until(all_delivered, 20.0 + n, 0.5, "every message at every node")
    rows = mesh.received(TOPIC)
    roads = mesh.roads(ids)
    spread_ms: list[float] = []
    hops: list[float] = []
    reached: list[int] = []
    last_roads: dict[str, int] = {}
    incomplete = 0
    for message_id, origin in published.items():
        t_pub = rows[origin][message_id]["received_at"]
        others = [(k, r[message_id]) for k, r in enumerate(rows) if k != origin and message_id in r]
        reached.append(len(others))
        hops += [float(row["hops"]) for _, row in others]
        if len(others) < n - 1:
            incomplete += 1
        elif others:
            last, row = max(others, key=lambda kr: kr[1]["received_at"])
            spread_ms.append((row["received_at"] - t_pub) * 1000.0)
            road = roads[last].get(message_id, "unknown")
            last_roads[road] = last_roads.get(road, 0) + 1
    rtt = wait_until(mesh.one_hop_rtt_ms, RTT_TIMEOUT_S, 1.0, "a QoS rtt on some link")
    if not spread_ms:
        raise RuntimeError(
            f"N={n}: no message reached all {n} nodes within {20 + n} s; other nodes reached per "
            f"message: median {statistics.median(reached):g} of {n - 1} (min {min(reached)})"
        )
    return {
        "nodes": n,
        "messages": messages,
        "incomplete": incomplete,
        "last_delivery_ms_p50": round(_quantile(spread_ms, 0.5), 2),
        "last_delivery_ms_p99": round(_quantile(spread_ms, 0.99), 2),
        "last_delivery_ms": [round(x, 2) for x in spread_ms],
        "hops_p99": _quantile(hops, 0.99) if hops else None,
        "hops_max": max(hops) if hops else None,
        "duplicates_per_node_per_message": round(mesh.duplicates(ids) / (n * messages), 4),
        "last_delivery_road": last_roads,
        "idle_cpu_pct_median": round(statistics.median(idle), 2),
        "idle_cpu_pct_total": round(sum(idle), 1),
        "one_hop_rtt_ms": round(statistics.median(rtt), 3),
        "links_per_node": links,
        "mesh_formed_s": round(formed_s, 1),
    }
