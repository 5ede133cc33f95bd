"""``f0mesh up`` processes inside netlab namespaces, driven from the test through a port forward.

A node listens on ``0.0.0.0`` inside its namespace, which holds only ``lo`` and the lab's TUN device:
peers reach it at ``http://<TUN address>:PORT`` (through the emulator, impairments and all), while the
test reaches its API through ``Netlab.forward``, which connects to ``127.0.0.1:PORT`` inside the
namespace and so never crosses the emulated link. Processes and forwarders end with the lab.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import subprocess
from pathlib import Path
from typing import Any

import httpx

from f0mesh import launch

from netlab import Netlab

TOKEN = "netlab-admin-token-0123456789"


class LabNode:
    def __init__(
        self,
        lab: Netlab,
        index: int,
        data_dir: Path,
        *,
        port: int = 8700,
        dial_allow: str,
        extra: list[str] | None = None,
    ) -> None:
        self.lab = lab
        self.index = index
        self.data_dir = data_dir
        self.port = port
        self.dial_allow = dial_allow
        self.extra = extra or []
        self.url = f"http://{lab.addr(index)}:{port}"  # what peers dial; crosses the emulator
        self.proc: subprocess.Popen[bytes] | None = None
        self.http: httpx.Client | None = None
        self.peer_id: str | None = None

    @property
    def api(self) -> httpx.Client:
        assert self.http is not None, "node not started"
        return self.http

    def start(self, timeout: float = 45.0) -> LabNode:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        # F0MESH_* variables of the caller's shell would silently change the node's flags.
        unset = [arg for key in os.environ if key.startswith("F0MESH_") for arg in ("-u", key)]
        flags = {
            "--host": "0.0.0.0",
            "--public-url": self.url,
            "--admin-token": TOKEN,
            "--dial-allow": [self.dial_allow],
            "--log-level": "info",
        }
        argv = ["env", *unset, *launch.up_argv(self.data_dir, port=self.port, flags=flags, extra=self.extra)]
        with open(self.data_dir / "node.log", "ab") as log:
            self.proc = self.lab.run(self.index, argv, stdout=log, stderr=subprocess.STDOUT)
        api_port = self.lab.forward(self.index, self.port)
        self.http = httpx.Client(
            base_url=f"http://127.0.0.1:{api_port}", timeout=30, headers={"Authorization": f"Bearer {TOKEN}"}
        )
        self.peer_id = launch.wait_healthy(
            self.proc,
            lambda path: self.api.get(path, timeout=2),
            timeout=timeout,
            log_path=self.data_dir / "node.log",
            what=f"node {self.index}",
        )
        return self

    def log_tail(self, n: int = 30) -> str:
        return launch.log_tail(self.data_dir / "node.log", n)

    def close(self) -> None:
        """Stop the node gracefully (the lab kills whatever is left when it closes)."""
        if self.http is not None:
            self.http.close()
        if self.proc is not None:
            launch.stop([self.proc], grace=15)

    def link(self, peer_id: str) -> dict[str, Any] | None:
        for view in self.api.get("/api/mesh-rtc/links").json()["links"]:
            if view["peer_id"] == peer_id:
                return view
        return None

    def samples(self, link_id: str) -> list[dict[str, Any]]:
        """This node's ``link_samples`` rows of one link, oldest first, straight from its SQLite store."""
        with contextlib.closing(sqlite3.connect(self.data_dir / "mesh.db", timeout=10)) as db:
            db.row_factory = sqlite3.Row
            rows = db.execute("SELECT * FROM link_samples WHERE link_id = ? ORDER BY at", (link_id,))
            return [dict(row) for row in rows]
