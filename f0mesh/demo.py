"""``f0mesh demo``: a whole mesh of separate node processes on this machine.

Each node is a real ``f0mesh up`` process with its own identity and SQLite store, bootstrapped
from node 1; the connection managers form the mesh. The demo only orchestrates through the nodes'
public HTTP API: it sets varied trust opinions, publishes a message every few seconds, reports
what reached every node, and stops every process it started, checking that none is left.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import secrets
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from rich import box
from rich.console import Console
from rich.live import Live
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from f0mesh import launch
from f0mesh.client import ClientError, NodeClient
from f0mesh.errors import F0MeshError
from f0mesh.tables import links_table, short_id

STARTUP_TIMEOUT_S = 60.0
LINK_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 10.0
HEALTH_TIMEOUT_S = 2.0
MESSAGES_LIMIT = 10000  # the most /api/gossip/messages returns at once
PUBLISH_EVERY_S = 3.0
SMALL_MESH = 12
DRAIN_S = 5.0
STATUS_EVERY_S = 3.0  # the live line; each update asks every node twice, so a large mesh waits longer
# Where the demo's nodes say they are (--location lat,lon), so the dashboard's map and globe show a mesh
# around the world; the city also names the node. Beyond the list, the cities repeat with a number.
CITIES = [
    ("berlin", 52.52, 13.40),
    ("new-york", 40.71, -74.01),
    ("sao-paulo", -23.55, -46.63),
    ("tokyo", 35.68, 139.69),
    ("sydney", -33.87, 151.21),
    ("nairobi", -1.29, 36.82),
    ("mumbai", 19.08, 72.88),
    ("reykjavik", 64.15, -21.94),
    ("san-francisco", 37.77, -122.42),
    ("singapore", 1.35, 103.82),
    ("cape-town", -33.92, 18.42),
    ("mexico-city", 19.43, -99.13),
]


class Mesh:
    def __init__(self, peers: int, base_port: int, root: Path, token: str) -> None:
        self.n = peers
        self.base_port = base_port
        self.root = root
        self.token = token
        self.procs: list[subprocess.Popen[bytes]] = []
        self.peer_ids: list[str] = []

    def url(self, i: int) -> str:
        return f"http://127.0.0.1:{self.base_port + i}"

    @property
    def profile(self) -> str:
        """Fast QoS and telemetry so a small mesh shows figures within seconds; a large mesh on one
        2-core machine gets calmer rates and a lower degree, or its nodes starve each other."""
        return "small" if self.n <= SMALL_MESH else "large"

    @staticmethod
    def place(i: int) -> dict[str, str]:
        city, lat, lon = CITIES[i % len(CITIES)]
        name = city if i < len(CITIES) else f"{city}-{i // len(CITIES) + 1}"
        return {"--location": f"{lat},{lon}", "--name": name}

    def argv(self, i: int) -> list[str]:
        """Node i+1's command line; every node but the first bootstraps from node 1."""
        flags = {
            "--admin-token": self.token,
            **self.place(i),
            "--log-level": "warning",
            "--bootstrap": [self.url(0)] if i > 0 else None,
        }
        return launch.up_argv(
            self.root / f"node-{i + 1}", port=self.base_port + i, profile=self.profile, flags=flags
        )

    def start(self) -> None:
        """Node 1 first; every other node knows only node 1 and finds the rest by peer exchange."""
        for i in range(self.n):
            log = self.root / f"node-{i + 1}" / "node.log"
            self.procs.append(launch.spawn(self.argv(i), log, start_new_session=True))

    def stop(self) -> list[int]:
        """SIGTERM, then SIGKILL what is left; returns PIDs still alive afterwards (should be none)."""
        return launch.stop(self.procs, STOP_TIMEOUT_S)


class Demo:
    """The demo's own HTTP conversations with its nodes (all through their public API)."""

    def __init__(self, mesh: Mesh, console: Console) -> None:
        self.mesh = mesh
        self.console = console
        self.nodes = [NodeClient(mesh.url(i), mesh.token, timeout=10) for i in range(mesh.n)]
        self.published: list[str] = []
        self.publish_failures = 0
        self.rng = random.Random(1)

    async def close(self) -> None:
        await asyncio.gather(*(node.aclose() for node in self.nodes))

    async def wait_healthy(self, progress: Progress) -> None:
        mesh = self.mesh
        task = progress.add_task("starting nodes", total=mesh.n)
        ids: dict[int, str] = {}
        deadline = time.monotonic() + STARTUP_TIMEOUT_S + 2 * mesh.n
        while len(ids) < mesh.n:
            for i in range(mesh.n):
                if i in ids:
                    continue
                if mesh.procs[i].poll() is not None:
                    raise F0MeshError(f"node {i + 1} exited early: see {mesh.root}/node-{i + 1}/node.log")
                with contextlib.suppress(ClientError, KeyError, TimeoutError):
                    ids[i] = (await asyncio.wait_for(self.nodes[i].health(), HEALTH_TIMEOUT_S))["peer_id"]
                    progress.advance(task)
            if time.monotonic() > deadline:
                raise F0MeshError(f"only {len(ids)} of {mesh.n} nodes answered /healthz in time")
            await asyncio.sleep(0.3)
        mesh.peer_ids = [ids[i] for i in range(mesh.n)]

    async def links_per_node(self) -> list[int]:
        counts = []
        for i in range(self.mesh.n):
            try:
                links = await self.nodes[i].links()
                counts.append(sum(1 for link in links if link["state"] == "open"))
            except (ClientError, KeyError):
                counts.append(0)
        return counts

    async def wait_linked(self, progress: Progress) -> list[int]:
        """Until every node holds at least min(3, N-1) links, formed by the connection managers."""
        want = min(3, self.mesh.n - 1)
        task = progress.add_task(f"linking (≥{want} links each)", total=self.mesh.n)
        deadline = time.monotonic() + LINK_TIMEOUT_S + self.mesh.n
        while True:
            counts = await self.links_per_node()
            progress.update(task, completed=sum(1 for c in counts if c >= want))
            if min(counts) >= want or time.monotonic() > deadline:
                return counts
            await asyncio.sleep(1.0)

    async def set_opinions(self) -> None:
        """Varied trust opinions, so PageRank gives the nodes different scores; all nodes at once."""
        n = self.mesh.n
        plan = [
            (i, j, round(self.rng.uniform(0.2, 1.0), 2))
            for i in range(n)
            for j in self.rng.sample(range(n), k=min(3, n - 1))
            if i != j
        ]

        async def put(i: int, j: int, weight: float) -> None:
            with contextlib.suppress(ClientError):
                await self.nodes[i].set_trust(self.mesh.peer_ids[j], weight)

        await asyncio.gather(*(put(*opinion) for opinion in plan))

    async def publish_one(self) -> None:
        i = self.rng.randrange(self.mesh.n)
        payload = {"from": f"node-{i + 1}", "n": len(self.published) + 1, "at": round(time.time(), 3)}
        try:
            self.published.append(await self.nodes[i].publish("demo", payload))
        except (ClientError, KeyError) as exc:
            self.publish_failures += 1
            self.console.print(f"[yellow]publish through node {i + 1} failed: {exc!r}[/]")

    async def delivered_to_all(self) -> int:
        have = set(self.published)
        for node in self.nodes:
            with contextlib.suppress(ClientError, KeyError):
                have &= {m["id"] for m in await node.messages("demo", limit=MESSAGES_LIMIT)}
                continue
            return 0
        return len(have)

    async def snapshot(self) -> list[dict[str, Any]]:
        with contextlib.suppress(ClientError, KeyError):
            return await self.nodes[0].links()
        return []


def _node_table(mesh: Mesh, counts: list[int]) -> Table:
    table = Table("node", "PeerId", "URL", "links", "pid")
    for i in range(mesh.n):
        table.add_row(
            str(i + 1), short_id(mesh.peer_ids[i]), mesh.url(i), str(counts[i]), str(mesh.procs[i].pid)
        )
    return table


def status_line(
    delivered: int, published: int, counts: list[int], remaining: float | None, load: float
) -> str:
    """What the mesh is doing while the demo runs, so far, in one line of 80 columns."""
    spread = (
        f"{min(counts)}–{max(counts)}" if counts and min(counts) != max(counts) else str(max(counts or [0]))
    )
    left = "" if remaining is None else f" · {max(0.0, remaining):.0f} s left"
    return f"{delivered} of {published} messages at every node · links/node {spread} · load {load:.1f}{left}"


def summary_table(summary: dict[str, Any], peers: int) -> Table:
    """The end of a run in words; ``--json`` prints the same figures as one JSON object."""
    table = Table(title="demo summary", box=box.SIMPLE_HEAD, show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    spread = summary.get("links_per_peer")
    published = summary.get("messages_published", 0)
    rows = [
        ("nodes up", f"{summary.get('peers_up', 0)} of {peers}"),
        (
            "links per node",
            f"min {spread['min']} · median {spread['median']:g} · max {spread['max']}" if spread else "-",
        ),
        ("messages published", str(published)),
        ("reached every node", f"{summary.get('messages_delivered_to_all', 0)} of {published}"),
        ("publish failures", str(summary.get("publish_failures", 0))),
    ]
    if "pids_alive_after_stop" in summary:
        rows.append(("processes left", str(len(summary["pids_alive_after_stop"]))))
    rows.append(("result", "[green]ok[/]" if summary.get("ok") else "[red]not ok[/]"))
    for name, value in rows:
        table.add_row(name, value)
    return table


async def _run(mesh: Mesh, duration: float | None, console: Console, summary: dict[str, Any]) -> None:
    demo = Demo(mesh, console)
    try:
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total}"),
            TimeElapsedColumn(),
            console=console,
        ) as progress:
            await demo.wait_healthy(progress)
            summary["peers_up"] = mesh.n
            counts = await demo.wait_linked(progress)
        await demo.set_opinions()
        console.print(_node_table(mesh, counts))
        console.print(f"dashboard of node 1: [bold]{mesh.url(0)}/login?token={mesh.token}[/]", soft_wrap=True)
        console.print(
            f"data and logs in {mesh.root}; stop with Ctrl-C"
            + (f", or wait {duration:.0f} s" if duration else "")
        )
        drain = DRAIN_S + mesh.n / 4  # the last messages need a few gossip rounds to reach everyone
        deadline = None if duration is None else time.monotonic() + duration
        next_publish = time.monotonic() + 1.0
        next_table = time.monotonic() + 5.0
        next_status = time.monotonic()
        # a live line in a terminal; in a log or a pipe, one line per update
        live = (
            Live(Text("publishing…"), console=console, refresh_per_second=2) if console.is_terminal else None
        )
        with live or contextlib.nullcontext():

            async def show_status() -> None:
                remaining = None if deadline is None else deadline - time.monotonic()
                line = status_line(
                    await demo.delivered_to_all(),
                    len(demo.published),
                    await demo.links_per_node(),
                    remaining,
                    os.getloadavg()[0],
                )
                if live is not None:
                    live.update(Text(line, no_wrap=True, overflow="ellipsis"))
                else:
                    console.print(line, soft_wrap=True)

            while deadline is None or time.monotonic() < deadline - drain:
                await asyncio.sleep(0.25)
                dead = [i + 1 for i, p in enumerate(mesh.procs) if p.poll() is not None]
                if dead:
                    raise F0MeshError(f"node(s) {dead} exited unexpectedly; see their node.log")
                if time.monotonic() >= next_publish:
                    await demo.publish_one()
                    next_publish = time.monotonic() + PUBLISH_EVERY_S
                if time.monotonic() >= next_status:
                    await show_status()
                    next_status = time.monotonic() + max(STATUS_EVERY_S, mesh.n / 4)
                if time.monotonic() >= next_table and deadline is None:
                    console.print(links_table(await demo.snapshot()))
                    next_table = time.monotonic() + 30.0
            await asyncio.sleep(drain)
            await show_status()
        counts = await demo.links_per_node()
        summary["links_per_peer"] = {
            "min": min(counts),
            "median": statistics.median(counts),
            "max": max(counts),
        }
        summary["messages_published"] = len(demo.published)
        summary["publish_failures"] = demo.publish_failures
        summary["messages_delivered_to_all"] = await demo.delivered_to_all()
        console.print(links_table(await demo.snapshot()))
        summary["ok"] = 0 < summary["messages_published"] == summary["messages_delivered_to_all"]
    finally:
        await demo.close()


def run_demo(
    *, peers: int, base_port: int, duration: float | None, data_dir: Path | None, console: Console
) -> dict[str, Any]:
    root = Path(data_dir) if data_dir else Path(tempfile.mkdtemp(prefix="f0mesh-demo-"))
    mesh = Mesh(peers, base_port, root, secrets.token_urlsafe(24))
    summary: dict[str, Any] = {
        "peers_up": 0,
        "links_per_peer": None,
        "messages_published": 0,
        "messages_delivered_to_all": 0,
        "pids": [],
        "ok": False,
    }
    try:
        mesh.start()
        summary["pids"] = [p.pid for p in mesh.procs]
        asyncio.run(_run(mesh, duration, console, summary))
    except KeyboardInterrupt:
        console.print("stopping…")
        summary["ok"] = True
    finally:
        left = mesh.stop()
        summary["pids_alive_after_stop"] = left
        if left:
            summary["ok"] = False
    console.print(summary_table(summary, peers))
    return summary
