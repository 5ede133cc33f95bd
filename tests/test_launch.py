"""f0mesh/launch.py: the command line, the environment, liveness and stopping, without a node."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import httpx
import pytest

from f0mesh import launch

# a process that ignores SIGTERM once it has said so, as a wedged node would
STUBBORN = (
    "import signal, sys, time\n"
    "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
    "print('ignoring SIGTERM', flush=True)\n"
    "time.sleep(120)\n"
)


def test_up_argv_renders_flags_as_the_cli_reads_them(tmp_path) -> None:
    argv = launch.up_argv(
        tmp_path,
        port=9001,
        profile="large",
        flags={"--bootstrap": ["http://a:1", "http://b:2"], "--private-read": True, "--name": None},
        extra=["--log-level", "debug"],
    )
    assert argv[:4] == [sys.executable, "-m", "f0mesh", "up"]
    assert argv[4:] == [
        "--data-dir", str(tmp_path), "--port", "9001", "--profile", "large",
        "--bootstrap", "http://a:1", "--bootstrap", "http://b:2", "--private-read",
        "--log-level", "debug",
    ]  # fmt: skip
    with pytest.raises(ValueError, match="--no-such-flag"):
        launch.up_argv(tmp_path, flags={"--no-such-flag": 1})


def test_node_env_drops_the_callers_f0mesh_variables() -> None:
    env = launch.node_env({"F0MESH_NAME": "x"}, base={"PATH": "/bin", "F0MESH_PORT": "1"})
    assert env == {"PATH": "/bin", "F0MESH_NAME": "x"}


def _wait_for_line(path: Path, text: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while text not in (path.read_text() if path.exists() else ""):
        assert time.monotonic() < deadline, f"no {text!r} in {path}"
        time.sleep(0.05)


def test_stop_kills_what_ignores_sigterm_after_the_grace(tmp_path) -> None:
    log = tmp_path / "stubborn.log"
    stubborn = launch.spawn([sys.executable, "-c", STUBBORN], log, start_new_session=True)
    polite = launch.spawn([sys.executable, "-c", "import time; time.sleep(120)"], tmp_path / "polite.log")
    _wait_for_line(log, "ignoring SIGTERM")
    assert launch.stop([stubborn, polite], grace=0.5) == []
    assert stubborn.returncode == -9 and polite.returncode == -15
    assert not launch.alive(stubborn.pid) and not launch.alive(polite.pid)


def test_wait_healthy_reports_an_early_exit_with_the_log(tmp_path) -> None:
    log = tmp_path / "node.log"
    proc = launch.spawn([sys.executable, "-c", "print('error: --port 0 is not a TCP port'); exit(2)"], log)

    def refused(path: str) -> httpx.Response:
        raise httpx.ConnectError("refused")

    with pytest.raises(launch.LaunchError, match=r"exited with 2.*--port 0"):
        launch.wait_healthy(proc, refused, timeout=30, log_path=log)


def test_wait_healthy_gives_up_at_its_bound_and_returns_the_peer_id(tmp_path) -> None:
    proc = launch.spawn([sys.executable, "-c", "import time; time.sleep(120)"], tmp_path / "x.log")
    try:
        with pytest.raises(launch.LaunchError, match="did not answer /healthz"):
            launch.wait_healthy(proc, lambda path: httpx.Response(503, json={}), timeout=0.3)
        answer = httpx.Response(200, json={"peer_id": "12D3KooWexample"})
        assert launch.wait_healthy(proc, lambda path: answer, timeout=5) == "12D3KooWexample"
    finally:
        launch.stop([proc], grace=5)
    assert proc.returncode == -15
