"""`f0mesh demo` as a newcomer runs it: a whole mesh, messages to all, nothing left behind."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys


def _free_range(n: int) -> int:
    for base in range(21000, 40000, 97):
        sockets = []
        try:
            for i in range(n):
                s = socket.socket()
                s.bind(("127.0.0.1", base + i))
                sockets.append(s)
            return base
        except OSError:
            continue
        finally:
            for s in sockets:
                s.close()
    raise RuntimeError("no free port range")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as fh:
        return fh.read().split(")")[-1].split()[0] != "Z"


def test_demo_five_peers_json(tmp_path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("F0MESH_")}
    base = _free_range(5)
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "f0mesh",
            "demo",
            "--peers",
            "5",
            "--duration",
            "40",
            "--json",
            "--base-port",
            str(base),
            "--data-dir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=240,
        env=env,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    summary = json.loads(r.stdout.strip().splitlines()[-1])
    assert summary["peers_up"] == 5
    assert summary["links_per_peer"]["min"] >= 3
    assert summary["messages_published"] > 0
    assert summary["messages_delivered_to_all"] == summary["messages_published"]
    assert len(summary["pids"]) == 5
    assert not [pid for pid in summary["pids"] if _alive(pid)]
