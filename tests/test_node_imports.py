"""A running ``f0mesh up`` process holds no module it never runs (issue #25: idle RSS): the terminal
printing of the other commands (rich, f0mesh.tables), httpx's own command line (rich's progress
bars and syntax highlighting, pygments) and pydantic's v1 package, ~5 MB between them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from nodes import free_port

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
