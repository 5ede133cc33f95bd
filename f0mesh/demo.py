"""``f0mesh demo``: a whole mesh of separate node processes on this machine.

Each node is a real ``f0mesh up`` process with its own identity and SQLite store. The demo only
orchestrates: it starts the processes, asks them to link over their public HTTP API, reports
what the mesh did, and stops every process it started, checking that none is left.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from f0mesh.cli import links_table
from f0mesh.errors import F0MeshError

STARTUP_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 10.0


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

    def start(self) -> None:
        for i in range(self.n):
            node_dir = self.root / f"node-{i + 1}"
            node_dir.mkdir(parents=True, exist_ok=True)
            argv = [
                sys.executable,
                "-m",
                "f0mesh",
                "up",
                "--data-dir",
                str(node_dir),
                "--port",
                str(self.base_port + i),
                "--admin-token",
                self.token,
                "--qos-interval",
                "5",
                "--probe-rate",
                "2",
                "--gossip-interval",
                "20",
                "--log-level",
                "warning",
            ]
            log = (node_dir / "node.log").open("ab")
            env = {k: v for k, v in os.environ.items() if not k.startswith("F0MESH_")}
            self.procs.append(
                subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=env)
            )
            log.close()

    def stop(self) -> list[int]:
        """SIGTERM, then SIGKILL what is left; returns PIDs still alive afterwards (should be none)."""
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT_S
        for proc in self.procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=5)
        return [p.pid for p in self.procs if _alive(p.pid)]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    with contextlib.suppress(OSError):
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
        return state != "Z"
    return True


async def _wait_healthy(mesh: Mesh, progress: Progress) -> None:
    task = progress.add_task("starting nodes", total=mesh.n)
    ids: dict[int, str] = {}
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    async with httpx.AsyncClient(timeout=2) as http:
        while len(ids) < mesh.n:
            for i in range(mesh.n):
                if i in ids:
                    continue
                if mesh.procs[i].poll() is not None:
                    raise F0MeshError(f"node {i + 1} exited early: see {mesh.root}/node-{i + 1}/node.log")
                with contextlib.suppress(httpx.HTTPError, ValueError):
                    ids[i] = (await http.get(f"{mesh.url(i)}/healthz")).json()["peer_id"]
                    progress.advance(task)
            if time.monotonic() > deadline:
                raise F0MeshError(
                    f"only {len(ids)} of {mesh.n} nodes answered /healthz in {STARTUP_TIMEOUT_S:.0f} s"
                )
            await asyncio.sleep(0.2)
    mesh.peer_ids = [ids[i] for i in range(mesh.n)]


def _dial_plan(n: int) -> list[tuple[int, int]]:
    """Each node dials the next two around a ring: every node ends with up to four links."""
    pairs = set()
    for i in range(n):
        for step in (1, 2):
            j = (i + step) % n
            if j != i:
                pairs.add((min(i, j), max(i, j)))
    return sorted(pairs)


async def _link(mesh: Mesh, progress: Progress) -> list[str]:
    plan = _dial_plan(mesh.n)
    task = progress.add_task("linking peers", total=len(plan))
    errors: list[str] = []
    headers = {"Authorization": f"Bearer {mesh.token}"}
    sem = asyncio.Semaphore(4)
    async with httpx.AsyncClient(timeout=40, headers=headers) as http:

        async def one(i: int, j: int) -> None:
            async with sem:
                try:
                    r = await http.post(f"{mesh.url(i)}/dial", json={"url": mesh.url(j)})
                    if r.status_code != 200:
                        errors.append(f"node {i + 1} → {j + 1}: {r.json().get('detail')}")
                except httpx.HTTPError as exc:
                    errors.append(f"node {i + 1} → {j + 1}: {type(exc).__name__}")
                progress.advance(task)

        await asyncio.gather(*(one(i, j) for i, j in plan))
    return errors


async def _snapshot(mesh: Mesh) -> list[list[dict[str, Any]]]:
    async with httpx.AsyncClient(timeout=5) as http:
        result = []
        for i in range(mesh.n):
            try:
                result.append((await http.get(f"{mesh.url(i)}/api/mesh-rtc/links")).json()["links"])
            except (httpx.HTTPError, ValueError, KeyError):
                result.append([])
        return result


def run_demo(
    *, peers: int, base_port: int, duration: float | None, data_dir: Path | None, console: Console
) -> dict[str, Any]:
    root = Path(data_dir) if data_dir else Path(tempfile.mkdtemp(prefix="f0mesh-demo-"))
    mesh = Mesh(peers, base_port, root, secrets.token_urlsafe(24))
    summary: dict[str, Any] = {"peers_up": 0, "ok": False, "pids": []}
    try:
        mesh.start()
        summary["pids"] = [p.pid for p in mesh.procs]
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total}"),
            TimeElapsedColumn(),
            console=console,
        ) as progress:
            asyncio.run(_wait_healthy(mesh, progress))
            summary["peers_up"] = mesh.n
            errors = asyncio.run(_link(mesh, progress))
        for e in errors:
            console.print(f"[yellow]dial failed:[/] {e}")
        snapshot = asyncio.run(_snapshot(mesh))
        counts = [sum(1 for link in links if link["state"] == "open") for links in snapshot]
        summary["links_per_peer"] = {
            "min": min(counts),
            "median": statistics.median(counts),
            "max": max(counts),
        }
        summary["messages_published"] = 0
        summary["messages_delivered_to_all"] = 0
        console.print(f"[bold]{mesh.n} nodes up[/], links per node {summary['links_per_peer']}")
        console.print(f"node 1: {mesh.url(0)}  dashboard login: {mesh.url(0)}/login?token={mesh.token}")
        console.print(links_table(snapshot[0]))
        console.print(
            f"data and logs in {root}; stop with Ctrl-C" + (f" or after {duration:.0f} s" if duration else "")
        )
        deadline = None if duration is None else time.monotonic() + duration
        while deadline is None or time.monotonic() < deadline:
            time.sleep(0.5 if deadline is None else max(0.0, min(0.5, deadline - time.monotonic())))
            dead = [i + 1 for i, p in enumerate(mesh.procs) if p.poll() is not None]
            if dead:
                console.print(f"[red]node(s) {dead} exited unexpectedly[/]")
                break
        else:
            summary["ok"] = True
    except KeyboardInterrupt:
        summary["ok"] = True
        console.print("stopping…")
    finally:
        left = mesh.stop()
        summary["pids_alive_after_stop"] = left
        if left:
            summary["ok"] = False
    return summary
