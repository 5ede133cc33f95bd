"""A running ``f0mesh up`` process holds no module it never runs (issue #25: idle RSS): the terminal
printing of the other commands (rich, f0mesh.tables), httpx's own command line (rich's progress
bars and syntax highlighting, pygments) and pydantic's v1 package, ~5 MB between them."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from nodes import free_port, wait_for

REPO = Path(__file__).resolve().parents[1]
NOT_IN_A_NODE = ("rich", "pygments", "httpx._main", "f0mesh.tables", "pydantic.v1")

# Runs the real command line and serve loop; once the node announces itself (started, app built,
# listening), it reports what it imported and stops itself the way an operator does (SIGTERM).
UP_SCRIPT = """
import os, signal, sys
from f0mesh import serve
from f0mesh.cli import app

announce = serve.announce

def report(node, config):
    announce(node, config)
    loaded = [m for m, mod in sys.modules.items() if mod is not None and m.startswith(NOT_IN_A_NODE)]
    print("UP", node.peer_id, "IMPORTED", ",".join(sorted(loaded)), flush=True)
    os.kill(os.getpid(), signal.SIGTERM)

serve.announce = report
data_dir, port = sys.argv[1:3]
app(["up", "--data-dir", data_dir, "--port", port, "--admin-token", "t" * 24, "--log-level", "warning"],
    prog_name="f0mesh")
"""


def test_a_running_node_holds_no_module_it_never_runs(tmp_path: Path) -> None:
    r = subprocess.run(
        [
            sys.executable,
            "-c",
            f"NOT_IN_A_NODE = {NOT_IN_A_NODE!r}\n{UP_SCRIPT}",
            str(tmp_path / "node"),
            str(free_port()),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
    )
    (line,) = [line for line in r.stdout.splitlines() if line.startswith("UP ")] or [r.stderr[-3000:]]
    _, peer_id, _, *imported = line.split(" ")
    assert peer_id.startswith("12D3KooW"), line
    assert imported == [""], f"imported by a running node: {imported}"
    assert r.returncode == 0, r.stderr[-3000:]


def test_the_httpx_command_line_is_kept_out_only_as_an_absent_optional_part() -> None:
    """httpx treats its kept-out command line as not installed: the package imports, with a stub main."""
    script = (
        "import sys\nfrom f0mesh import serve\nserve.keep_out_unused()\nimport httpx\n"
        "assert sys.modules['httpx._main'] is None and callable(httpx.main) and httpx.Client\n"
    )
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, cwd=REPO)
    assert r.returncode == 0, r.stderr[-3000:]


# Loaded by every interpreter on its PYTHONPATH: at a normal exit it writes what that interpreter held.
SITECUSTOMIZE = """
import atexit, json, os, sys

def _report():
    with open(os.path.join(os.path.dirname(__file__), f"modules.{os.getpid()}.json"), "w") as fh:
        held = [m for m, mod in sys.modules.items() if mod is not None]
        json.dump({"pid": os.getpid(), "modules": held}, fh)

atexit.register(_report)
"""


def test_f0mesh_up_serves_in_an_interpreter_without_the_command_line(tmp_path: Path) -> None:
    """``python -m f0mesh up`` parses its flags with typer, then the same process (same PID) serves from a
    fresh interpreter: typer and its own copy of click (~2 MB) are not held for the node's life."""
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(SITECUSTOMIZE)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("F0MESH_")}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(hook), env.get("PYTHONPATH")) if p)
    argv = [sys.executable, "-m", "f0mesh", "up", "--data-dir", str(tmp_path / "node"), "--port", str(port)]
    proc = subprocess.Popen(
        [*argv, "--log-level", "warning"], env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        health = wait_for(
            lambda: _healthz(port) or (proc.poll() is not None and {"exited": proc.returncode}),
            60,
            0.2,
            "the node's /healthz",
        )
        assert health.get("status") == "ok", health
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=30)
    assert proc.returncode == 0, err.decode()[-3000:]
    assert health["peer_id"] in out.decode()  # the start-up block, printed by the serving interpreter
    (report,) = [json.loads(p.read_text()) for p in hook.glob("modules.*.json")]
    assert report["pid"] == proc.pid
    assert "f0mesh.node" in report["modules"]
    held = [m for m in report["modules"] if m.split(".")[0] == "typer" or m == "f0mesh.cli"]
    assert held == [], f"the serving interpreter holds the command line: {held}"


def _healthz(port: int) -> dict[str, object] | None:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).json()
    except httpx.HTTPError:
        return None


@pytest.mark.parametrize("value", ["banana", "987", "987:" + "0" * 32])
def test_the_hand_over_refuses_what_is_no_descriptor(tmp_path: Path, value: str) -> None:
    """Set by mistake to something that is no open descriptor: one line, exit code 2, no traceback."""
    env = {**os.environ, "F0MESH_SERVE_CONFIG_FD": value}
    argv = [sys.executable, "-m", "f0mesh", "up", "--data-dir", str(tmp_path / "node")]
    r = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60, cwd=REPO)
    assert r.returncode == 2 and "hand-over" in r.stderr and "Traceback" not in r.stderr, r.stderr[-2000:]


def test_the_hand_over_refuses_a_pipe_of_anyone_else(tmp_path: Path) -> None:
    """Pointed by mistake at a pipe that carries something else (standard input here): refused."""
    env = {**os.environ, "F0MESH_SERVE_CONFIG_FD": "0:" + "0" * 32}
    argv = [sys.executable, "-m", "f0mesh", "up", "--data-dir", str(tmp_path / "node")]
    r = subprocess.run(
        argv, env=env, input="not settings", capture_output=True, text=True, timeout=60, cwd=REPO
    )
    assert r.returncode == 2 and "hand-over" in r.stderr and "Traceback" not in r.stderr, r.stderr[-2000:]
    assert not (tmp_path / "node").exists()


def test_the_hand_over_refuses_a_descriptor_that_is_not_its_pipe(tmp_path: Path) -> None:
    """F0MESH_SERVE_CONFIG_FD is f0mesh's own hand-over: set by mistake to a file, the node does not start."""
    settings = tmp_path / "settings"
    settings.write_bytes(b"not a pipe")
    with settings.open("rb") as fh:
        env = {**os.environ, "F0MESH_SERVE_CONFIG_FD": str(fh.fileno())}
        r = subprocess.run(
            [sys.executable, "-m", "f0mesh", "up", "--data-dir", str(tmp_path / "node")],
            env=env,
            pass_fds=(fh.fileno(),),
            capture_output=True,
            text=True,
            timeout=60,
            cwd=REPO,
        )
    assert r.returncode == 2 and "hand-over" in r.stderr, r.stderr[-2000:]
    assert not (tmp_path / "node").exists()


@pytest.mark.parametrize("why", ["too large for the pipe", "cannot be pickled"])
def test_settings_that_cannot_travel_are_served_in_this_interpreter(tmp_path: Path, monkeypatch, why) -> None:
    from f0mesh import serve
    from f0mesh.config import NodeConfig

    served: list[NodeConfig] = []
    monkeypatch.setattr(serve, "run", lambda config, log_level: served.append(config))
    monkeypatch.setattr(os, "execve", lambda *args: pytest.fail("exec'd with settings that cannot travel"))
    if why == "too large for the pipe":
        monkeypatch.setattr(serve, "PIPE_CAPACITY", 16)
    else:
        monkeypatch.setattr(serve.pickle, "dumps", lambda obj: (_ for _ in ()).throw(TypeError("no")))
    config = NodeConfig(data_dir=tmp_path)
    serve.run_in_fresh_interpreter(config, "info", False)
    assert served == [config]


def test_the_hand_over_refuses_settings_that_are_no_node_config(tmp_path: Path) -> None:
    """Even with the right token, what unpickles to anything but a NodeConfig is refused."""
    import pickle

    token = "1" * 32
    read_end, write_end = os.pipe()
    os.write(write_end, token.encode() + pickle.dumps(("not a config", "info", False)))
    os.close(write_end)
    try:
        env = {**os.environ, "F0MESH_SERVE_CONFIG_FD": f"{read_end}:{token}"}
        argv = [sys.executable, "-m", "f0mesh", "up", "--data-dir", str(tmp_path / "node")]
        r = subprocess.run(
            argv, env=env, pass_fds=(read_end,), capture_output=True, text=True, timeout=60, cwd=REPO
        )
    finally:
        os.close(read_end)
    assert r.returncode == 2 and "hand-over" in r.stderr and "Traceback" not in r.stderr, r.stderr[-2000:]
    assert not (tmp_path / "node").exists()


def test_the_hand_over_never_waits_on_a_pipe_someone_still_writes(tmp_path: Path) -> None:
    """A pipe whose writer stays open and silent is refused at once, not read until it closes."""
    read_end, write_end = os.pipe()
    try:
        env = {**os.environ, "F0MESH_SERVE_CONFIG_FD": f"{read_end}:" + "1" * 32}
        argv = [sys.executable, "-m", "f0mesh", "up", "--data-dir", str(tmp_path / "node")]
        r = subprocess.run(
            argv, env=env, pass_fds=(read_end,), capture_output=True, text=True, timeout=60, cwd=REPO
        )
    finally:
        os.close(read_end)
        os.close(write_end)
    assert r.returncode == 2 and "hand-over" in r.stderr and "Traceback" not in r.stderr, r.stderr[-2000:]
