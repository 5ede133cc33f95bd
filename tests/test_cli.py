"""The command line as an operator uses it: real processes, exit codes, no tracebacks."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading

from nodes import TOKEN, NodeProcess, free_port, wait_for

F0MESH = [sys.executable, "-m", "f0mesh"]


def run(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("F0MESH_")}
    return subprocess.run([*F0MESH, *args], capture_output=True, text=True, timeout=timeout, env=env)


def test_id_prints_a_stable_peer_id(tmp_path) -> None:
    first = run("id", "--data-dir", str(tmp_path))
    assert first.returncode == 0
    assert run("id", "--data-dir", str(tmp_path)).stdout == first.stdout
    assert first.stdout.strip().startswith("12D3KooW")


def test_bad_store_url_is_one_line_error(tmp_path) -> None:
    for url in ("mysql://x/y", f"postgresql://nobody@127.0.0.1:{free_port()}/x"):
        r = run("up", "--data-dir", str(tmp_path), "--port", str(free_port()), "--store", url)
        assert r.returncode != 0
        assert "Traceback" not in r.stderr
        errors = [line for line in r.stderr.splitlines() if line.startswith("error:")]
        assert len(errors) == 1, r.stderr


def test_corrupt_identity_is_one_line_error(tmp_path) -> None:
    (tmp_path / "identity.key").write_text("junk")
    r = run("up", "--data-dir", str(tmp_path), "--port", str(free_port()))
    assert r.returncode != 0 and "Traceback" not in r.stderr and "identity" in r.stderr


def test_up_stops_cleanly_on_sigterm_and_sigint(tmp_path) -> None:
    for sig in (signal.SIGTERM, signal.SIGINT):
        node = NodeProcess(tmp_path / sig.name).start()
        node.proc.send_signal(sig)
        assert node.proc.wait(timeout=20) == 0
        log = node.log_tail(200)
        assert "Traceback" not in log and "stopped" in log
        node.http.close()


def test_up_ends_open_event_streams_cleanly_when_stopped(tmp_path) -> None:
    """An open event stream (a dashboard, ``f0mesh subscribe``) never ends by itself: at SIGTERM it held
    the server to its graceful timeout, then uvicorn cancelled it and logged the cancellation as an
    error with a traceback, and the client read a chunked body cut short. Now each ends as a complete
    response, and the node stops without an error line."""
    node = NodeProcess(tmp_path).start()
    paths = ["/api/events", "/api/gossip/subscribe?topic=news"]
    opened = {path: threading.Event() for path in paths}
    ended: dict[str, str] = {}

    def read(path: str) -> None:
        try:
            with node.http.stream("GET", path, timeout=30) as response:
                lines = response.iter_lines()
                first = next(lines)
                opened[path].set()
                rest = list(lines)
            ended[path] = f"complete: {response.status_code} {first!r} and {len(rest)} lines"
        except Exception as exc:  # a body cut short, or a read that outlives the node
            ended[path] = f"{type(exc).__name__}: {exc}"
        opened[path].set()

    readers = [threading.Thread(target=read, args=(path,)) for path in paths]
    try:
        for reader in readers:
            reader.start()
        for path in paths:
            assert opened[path].wait(10), f"{path} did not start streaming"
        node.proc.send_signal(signal.SIGTERM)
        assert node.proc.wait(timeout=30) == 0
        for reader in readers:
            reader.join(timeout=30)
        assert all(ended.get(path, "").startswith("complete: 200 ': connected'") for path in paths), ended
        log = node.log_tail(400)
        assert "Traceback" not in log and "ERROR" not in log and "stopped" in log, log
    finally:
        node.close()


def test_client_commands_against_a_node(tmp_path) -> None:
    a = NodeProcess(tmp_path / "a").start()
    b = NodeProcess(tmp_path / "b").start()
    try:
        r = run("peers", "--node", a.url, "--admin-token", TOKEN, "--add", b.url, "--json")
        assert r.returncode == 0, r.stderr
        assert json.loads(r.stdout)[0]["peer_id"] == b.peer_id
        r = run("dial", b.peer_id, "--node", a.url, "--admin-token", TOKEN)
        assert r.returncode == 0 and "open" in r.stdout, r.stderr
        r = run("links", "--node", a.url, "--json")
        assert [link["peer_id"] for link in json.loads(r.stdout)] == [b.peer_id]
        assert run("links", "--node", a.url).returncode == 0
        r = run("dial", b.url, "--node", a.url, "--admin-token", "wrong")
        assert r.returncode != 0 and "unauthorized" in r.stderr
        wait_for(lambda: len(b.open_links()) == 1, 10, what="link on b")
    finally:
        a.close()
        b.close()
