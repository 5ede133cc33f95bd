"""Starting and stopping ``f0mesh up`` processes: the one place their command line is assembled.

The demo, the benchmarks and the tests run real nodes as separate processes. They share how the
command line is built (from flag names and values, checked against f0mesh/flags.py, or a profile),
which environment a node gets (the caller's, without its F0MESH_* variables: those would silently
change the node's flags), how liveness is judged (``GET /healthz`` answers with the PeerId) and
how a node is stopped (SIGTERM, then SIGKILL after a bounded grace).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx

from f0mesh.errors import F0MeshError
from f0mesh.flags import ENV_PREFIX, render

HEALTH_POLL_S = 0.1
STOP_GRACE_S = 10.0
KILL_WAIT_S = 5.0


class LaunchError(F0MeshError):
    """A node process exited or stayed silent while it was expected to come up."""

    code = "launch"


def up_argv(
    data_dir: Path | str,
    *,
    port: int | None = None,
    profile: str | None = None,
    flags: Mapping[str, Any] | None = None,
    extra: Sequence[str] = (),
    python: str = sys.executable,
) -> list[str]:
    """``python -m f0mesh up`` with these settings; ``flags`` maps flag names to values (a list
    repeats the flag, True is a bare switch, None and False leave it out); an unknown flag is a
    ValueError here rather than a node that exits. ``extra`` is passed on as written."""
    given = {"--port": port, "--profile": profile, **(flags or {})}
    return [python, "-m", "f0mesh", "up", "--data-dir", str(data_dir), *render(given), *extra]


def node_env(extra: Mapping[str, str] | None = None, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The caller's environment without its F0MESH_* variables, plus ``extra``."""
    source = os.environ if base is None else base
    return {k: v for k, v in source.items() if not k.startswith(ENV_PREFIX)} | dict(extra or {})


def spawn(argv: Sequence[str], log_path: Path, *, env: Mapping[str, str] | None = None, **popen: Any):
    """Start a process with stdout and stderr appended to ``log_path``; ``env`` is given whole
    (default: ``node_env()``)."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        return subprocess.Popen(
            list(argv),
            stdout=log,
            stderr=subprocess.STDOUT,
            env=dict(node_env() if env is None else env),
            **popen,
        )


def log_tail(log_path: Path, lines: int = 30) -> str:
    if not log_path.exists():
        return ""
    return "\n".join(log_path.read_text(errors="replace").splitlines()[-lines:])


def wait_healthy(
    proc: subprocess.Popen[Any],
    get: Callable[[str], httpx.Response],
    *,
    timeout: float,
    log_path: Path | None = None,
    what: str = "node",
) -> str:
    """Poll ``get("/healthz")`` until the node answers with its PeerId; LaunchError (with the log's
    tail) if the process exits first or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            tail = log_tail(log_path) if log_path else ""
            raise LaunchError(f"{what} exited with {proc.returncode} before answering /healthz: {tail}")
        with contextlib.suppress(httpx.HTTPError, ValueError, KeyError, TypeError):
            return str(get("/healthz").json()["peer_id"])
        if time.monotonic() >= deadline:
            tail = log_tail(log_path) if log_path else ""
            raise LaunchError(f"{what} did not answer /healthz within {timeout:g} s: {tail}")
        time.sleep(HEALTH_POLL_S)


def stop(procs: Iterable[subprocess.Popen[Any]], grace: float = STOP_GRACE_S) -> list[int]:
    """SIGTERM every process still running, SIGKILL what is left after ``grace`` seconds; returns
    the PIDs still alive afterwards (none, unless the kernel is stuck)."""
    procs = list(procs)
    for proc in procs:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + grace
    for proc in procs:
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=max(0.01, deadline - time.monotonic()))
    for proc in procs:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=KILL_WAIT_S)
    return [proc.pid for proc in procs if alive(proc.pid)]


def alive(pid: int) -> bool:
    """Whether a PID is a running process (a zombie is not)."""
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
