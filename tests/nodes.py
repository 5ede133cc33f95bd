"""Real ``f0mesh up`` processes for integration tests, on loopback, always stopped afterwards."""

from __future__ import annotations

import concurrent.futures
import os
import resource
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any, Protocol, TypeVar

import httpx

from f0mesh import launch

TOKEN = "test-admin-token-0123456789"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class NodeProcess:
    def __init__(
        self,
        data_dir: Path,
        *,
        port: int | None = None,
        extra: list[str] | None = None,
        env: dict[str, str] | None = None,
        nofile: int | None = None,
    ) -> None:
        """``env``: F0MESH_* variables for the node (the test's own are not passed on);
        ``nofile``: the node's descriptor limit, soft and hard."""
        self.data_dir = data_dir
        self.port = port or free_port()
        self.extra = extra or []
        self.env = env or {}
        self.nofile = nofile
        self.proc: subprocess.Popen[bytes] | None = None
        self.peer_id: str | None = None
        self.url = f"http://127.0.0.1:{self.port}"
        self.http = httpx.Client(base_url=self.url, timeout=30, headers={"Authorization": f"Bearer {TOKEN}"})

    def start(self, timeout: float = 30.0) -> NodeProcess:
        log = self.data_dir / "node.log"
        argv = launch.up_argv(
            self.data_dir,
            port=self.port,
            flags={"--admin-token": TOKEN, "--log-level": "info"},
            extra=self.extra,
        )
        self.proc = launch.spawn(
            argv, log, env=launch.node_env(self.env), preexec_fn=self._limits if self.nofile else None
        )
        self.peer_id = launch.wait_healthy(
            self.proc,
            lambda path: self.http.get(path, timeout=1),
            timeout=timeout,
            log_path=log,
            what=f"node on port {self.port}",
        )
        return self

    def _limits(self) -> None:
        assert self.nofile is not None
        resource.setrlimit(resource.RLIMIT_NOFILE, (self.nofile, self.nofile))

    def log_tail(self, n: int = 30) -> str:
        return launch.log_tail(self.data_dir / "node.log", n)

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self) -> int | None:
        if self.proc is None:
            return None
        launch.stop([self.proc], grace=15)
        return self.proc.returncode

    def close(self) -> None:
        self.stop()
        self.http.close()

    # -- API helpers -----------------------------------------------------------------------

    def links(self) -> list[dict[str, Any]]:
        return self.http.get("/api/mesh-rtc/links").json()["links"]

    def open_links(self) -> list[dict[str, Any]]:
        return [link for link in self.links() if link["state"] == "open"]

    def link_to(self, peer_id: str) -> dict[str, Any] | None:
        for link in self.links():
            if link["peer_id"] == peer_id:
                return link
        return None

    def dial(self, target: NodeProcess, **kwargs: Any) -> httpx.Response:
        return self.http.post("/dial", json={"url": target.url}, **kwargs)


START_TIMEOUT_S = 30.0  # for one node; start_all gives n nodes n times that, as one after another had


class Startable(Protocol):
    def start(self, timeout: float = ...) -> Any: ...


StartableT = TypeVar("StartableT", bound=Startable)


def start_all(nodes: list[StartableT]) -> list[StartableT]:
    """Start the nodes side by side: a node spends its first seconds importing and opening its store,
    on a CPU of its own when there is one, so a mesh comes up in a fraction of the time of one node
    after the other."""
    timeout = START_TIMEOUT_S * len(nodes)  # on a busy host they share its CPUs with the rest of its load
    with concurrent.futures.ThreadPoolExecutor(len(nodes)) as pool:
        list(pool.map(lambda node: node.start(timeout=timeout), nodes))
    return nodes


class NodeFactory:
    """Starts ``f0mesh up`` processes under one directory (``many``: several side by side) and stops
    every one of them in ``close``, side by side too (SIGTERM to all, then one bounded wait)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.started: list[NodeProcess] = []

    def __call__(self, name: str = "n", *, extra: list[str] | None = None, start: bool = True) -> NodeProcess:
        node = NodeProcess(self.root / f"{name}{len(self.started)}", extra=extra)
        self.started.append(node)
        return node.start() if start else node

    def many(self, *names: str, extra: list[str] | None = None) -> list[NodeProcess]:
        """One started node per name, all with ``extra``, started at the same time."""
        return start_all([self(name, extra=extra, start=False) for name in names])

    def close(self) -> None:
        launch.stop([node.proc for node in self.started if node.proc is not None], grace=15)
        for node in self.started:
            node.http.close()


def rss_kib(pid: int | str = "self") -> int:
    """Resident memory of a process, from /proc."""
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError(f"no VmRSS for pid {pid}")


def udp_sockets(pid: int) -> int:
    """UDP sockets the process holds (ICE transports), from /proc."""
    inodes = set()
    for name in ("udp", "udp6"):
        with open(f"/proc/{pid}/net/{name}") as fh:
            next(fh)
            inodes.update(line.split()[9] for line in fh if line.strip())
    count = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:[") and target[8:-1] in inodes:
            count += 1
    return count


def wait_for(predicate, timeout: float, interval: float = 0.2, what: str = "condition") -> Any:
    """Poll until ``predicate()`` is truthy; returns its value, or fails the test after ``timeout``."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what} (last: {last!r})")
