"""`f0mesh demo` as a newcomer runs it: a whole mesh, messages to all, nothing left behind."""

from __future__ import annotations

import io
import json
import os
import re
import socket
import subprocess
import sys

from rich.console import Console

from f0mesh.config import NodeConfig
from f0mesh.demo import Mesh, status_line, summary_table


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
            "20",
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
    # between the bars and the summary a live line said how far the messages had got; the summary is
    # a table in words, not a Python dict
    assert re.search(r"\d+ of \d+ messages at every node · links/node", r.stderr), r.stderr[-3000:]
    assert re.search(r"reached every node\s+\d+ of \d+", r.stderr) and "{'min'" not in r.stderr


def test_live_line_and_summary_table() -> None:
    line = status_line(4, 5, [3, 4, 4], 12.4, 1.5)
    assert line == "4 of 5 messages at every node · links/node 3–4 · load 1.5 · 12 s left"
    assert len(status_line(1234, 1250, [3, 12], 1000, 12.5)) <= 80
    summary = {
        "peers_up": 3,
        "links_per_peer": {"min": 2, "median": 2, "max": 2},
        "messages_published": 5,
        "messages_delivered_to_all": 5,
        "publish_failures": 0,
        "pids_alive_after_stop": [],
        "ok": True,
    }
    console = Console(width=80, record=True, file=io.StringIO())
    console.print(summary_table(summary, 3))
    text = " ".join(console.export_text().split())
    for words in ("nodes up 3 of 3", "links per node min 2 · median 2 · max 2", "reached every node 5 of 5"):
        assert words in text, text
    assert "result ok" in text and "processes left 0" in text, text


def _config_of(argv: list[str], monkeypatch) -> NodeConfig:
    """The NodeConfig ``f0mesh up`` builds from a command line (the serve loop is replaced)."""
    from f0mesh import cli, serve

    seen: list[NodeConfig] = []
    monkeypatch.setattr(serve, "run", lambda config, *args, **kwargs: seen.append(config))
    assert argv[1:4] == ["-m", "f0mesh", "up"], argv
    cli.app(argv[3:], standalone_mode=False)
    return seen[0]


def test_large_meshes_get_the_calm_profile_and_everyone_bootstraps_from_node_one(tmp_path, monkeypatch):
    """The calm rates once existed only on paper: the command line must carry them to the node."""
    for key in [k for k in os.environ if k.startswith("F0MESH_")]:
        monkeypatch.delenv(key)
    small, large = Mesh(5, 9000, tmp_path, "t"), Mesh(32, 9000, tmp_path, "t")
    first = _config_of(small.argv(0), monkeypatch)
    assert first.probe_rate == 2 and first.bootstrap == [] and first.name == "berlin"
    config = _config_of(large.argv(7), monkeypatch)
    assert config.bootstrap == [large.url(0)] and config.port == 9007
    assert config.probe_rate < 2 and config.heartbeat_timeout > 4
    assert config.degree.d_hi < 12 and config.heartbeat_interval == config.heartbeat_timeout / 4
