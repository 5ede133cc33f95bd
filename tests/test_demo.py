"""`f0mesh demo` as a newcomer runs it: a whole mesh, messages to all, nothing left behind."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

from f0mesh.demo import Mesh


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


def _flag(argv: list[str], name: str) -> str | None:
    return argv[argv.index(name) + 1] if name in argv else None


def test_large_meshes_get_the_calm_flags_and_everyone_bootstraps_from_node_one(tmp_path) -> None:
    """The calm rates once existed only on paper: the command line must carry them."""
    small, large = Mesh(5, 9000, tmp_path, "t"), Mesh(32, 9000, tmp_path, "t")
    assert _flag(small.argv(0), "--probe-rate") == "2" and _flag(small.argv(0), "--bootstrap") is None
    argv = large.argv(7)
    assert _flag(argv, "--bootstrap") == large.url(0)
    assert _flag(argv, "--port") == "9007"
    assert float(_flag(argv, "--probe-rate") or "inf") < 2
    assert float(_flag(argv, "--heartbeat-timeout") or "0") > 4
    assert int(_flag(argv, "--d-hi") or "99") < 12
