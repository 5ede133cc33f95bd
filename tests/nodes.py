"""Real ``f0mesh up`` processes for integration tests, on loopback, always stopped afterwards."""

from __future__ import annotations

import contextlib
import os
import resource
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

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
        self.data_dir.mkdir(parents=True, exist_ok=True)
        argv = [
            sys.executable,
            "-m",
            "f0mesh",
            "up",
            "--data-dir",
            str(self.data_dir),
            "--port",
            str(self.port),
            "--admin-token",
            TOKEN,
            "--log-level",
            "info",
            *self.extra,
        ]
        log = (self.data_dir / "node.log").open("ab")
        env = {k: v for k, v in os.environ.items() if not k.startswith("F0MESH_")} | self.env
        self.proc = subprocess.Popen(
            argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            preexec_fn=self._limits if self.nofile else None,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"node exited with {self.proc.returncode}: {self.log_tail()}")
            with contextlib.suppress(httpx.HTTPError):
                self.peer_id = self.http.get("/healthz", timeout=1).json()["peer_id"]
                return self
            time.sleep(0.1)
        raise RuntimeError(
            f"node on port {self.port} did not answer /healthz in {timeout} s: {self.log_tail()}"
        )

    def _limits(self) -> None:
        assert self.nofile is not None
        resource.setrlimit(resource.RLIMIT_NOFILE, (self.nofile, self.nofile))

    def log_tail(self, n: int = 30) -> str:
        path = self.data_dir / "node.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:]) if path.exists() else ""

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self) -> int | None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        return self.proc.returncode if self.proc else None

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
