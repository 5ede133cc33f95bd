"""The CLI as an operator meets it: one line per mistake, the data-dir lock, the start-up block,
and the client subcommands against real nodes, in an 80-column terminal."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

from typer.testing import CliRunner, Result

from f0mesh import __version__
from f0mesh.cli import app

from nodes import TOKEN, NodeProcess, free_port, wait_for

F0MESH = [sys.executable, "-m", "f0mesh"]
UNASSIGNED = "192.0.2.7"  # TEST-NET-1: never an address of this machine; nothing is sent to it


def run(
    *args: str, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("F0MESH_")}
    clean.update({"COLUMNS": "80", **(env or {})})
    return subprocess.run([*F0MESH, *args], capture_output=True, text=True, timeout=timeout, env=clean)


def one_error_line(stderr: str) -> str:
    """The whole of stderr is one ``error: ...`` line: no traceback, no usage block, no panel."""
    assert "Traceback" not in stderr, stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    return lines[0]


def cli(*args: str, env: dict[str, str] | None = None) -> Result:
    """In-process (no interpreter start-up); for output whose width does not matter."""
    clean: dict[str, str | None] = {k: None for k in os.environ if k.startswith("F0MESH_")}
    result = CliRunner().invoke(app, list(args), env={**clean, **(env or {})})
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    return result


def invoke(*args: str) -> tuple[int, str]:
    """The exit code and the one error line of a command that must fail."""
    result = cli(*args)
    return result.exit_code, one_error_line(result.stderr)


# -- operator errors: one line with the next step, exit code != 0 -----------------------------------


def test_data_dir_that_is_a_file(tmp_path) -> None:
    (tmp_path / "f").write_text("")
    for command in ("up", "id"):
        code, line = invoke(
            command,
            "--data-dir",
            str(tmp_path / "f"),
            *(["--port", str(free_port())] if command == "up" else []),
        )
        assert code != 0 and "is a file, not a directory" in line, line


def test_data_dir_that_cannot_be_written(tmp_path) -> None:
    """Root writes anywhere, so the directory is a read-only tmpfs in a mount namespace of its own."""
    target = tmp_path / "ro"
    target.mkdir()
    script = 'mount -t tmpfs -o ro,size=64k tmpfs "$1" && exec "$2" -m f0mesh up --data-dir "$1" --port "$3"'
    r = subprocess.run(
        ["unshare", "-m", "sh", "-c", script, "sh", str(target), sys.executable, str(free_port())],
        capture_output=True,
        text=True,
        timeout=60,
        env={k: v for k, v in os.environ.items() if not k.startswith("F0MESH_")},
    )
    assert r.returncode != 0
    assert "read-only file system" in one_error_line(r.stderr)


def test_log_level_is_a_choice_in_a_real_process(tmp_path) -> None:
    r = run("up", "--data-dir", str(tmp_path), "--log-level", "verbose")
    assert r.returncode != 0
    line = one_error_line(r.stderr)
    assert "'verbose' is not one of" in line and "info" in line and "--help" in line


def test_bootstrap_without_scheme(tmp_path) -> None:
    # a real process: before the check, `up` started and retried the address forever
    r = run(
        "up",
        "--data-dir",
        str(tmp_path),
        "--port",
        str(free_port()),
        "--bootstrap",
        "127.0.0.1:9410",
        timeout=30,
    )
    assert r.returncode != 0 and "write http://127.0.0.1:9410" in one_error_line(r.stderr)


def test_location_that_is_not_lat_lon(tmp_path) -> None:
    r = run("up", "--data-dir", str(tmp_path), "--port", str(free_port()), "--location", "abc", timeout=30)
    assert r.returncode != 0 and "LAT,LON" in one_error_line(r.stderr)
    for bad in ("91,0", "10,181", "1;2", "1,2,3"):
        code, line = invoke("up", "--data-dir", str(tmp_path), "--port", str(free_port()), "--location", bad)
        assert code != 0 and "LAT,LON" in line, line


def test_host_not_on_this_machine_is_not_port_in_use(tmp_path) -> None:
    code, line = invoke("up", "--data-dir", str(tmp_path), "--port", str(free_port()), "--host", UNASSIGNED)
    assert code != 0 and "not an address of this machine" in line and "in use" not in line, line
    assert not (tmp_path / "mesh.db").exists()  # refused before the node opened anything


def test_port_in_use_says_so(tmp_path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, line = invoke("up", "--data-dir", str(tmp_path), "--port", str(port))
    assert code != 0 and "in use by another process" in line and "--port" in line, line


def test_client_errors_are_sentences() -> None:
    port = free_port()  # nothing listens there
    r = run("links", "--node", f"127.0.0.1:{port}")  # no scheme: taken as http://
    assert r.returncode != 0
    line = one_error_line(r.stderr)
    assert f"http://127.0.0.1:{port}" in line and "Connection refused" in line, line
    assert "UnsupportedProtocol" not in line
    code, line = invoke("links", "--node", "ftp://127.0.0.1:1")
    assert code != 0 and "give the node's URL" in line
    code, line = invoke("dial", "garbage", "--node", f"http://127.0.0.1:{port}")
    assert code != 0 and "neither a URL" in line and "^" not in line, line
    code, line = invoke("dial", "127.0.0.1:9410", "--node", f"http://127.0.0.1:{port}")
    assert code != 0 and "write http://127.0.0.1:9410" in line, line


def test_version() -> None:
    for flag in ("--version", "-V"):
        r = run(flag)
        assert r.returncode == 0 and r.stdout.strip() == f"f0mesh {__version__}", (r.stdout, r.stderr)


# -- the data-dir lock and the start-up block --------------------------------------------------------


def test_second_up_on_a_live_data_dir_names_the_first(tmp_path) -> None:
    from f0mesh.datadir import DataDirLock

    first = NodeProcess(tmp_path / "a").start()
    try:
        port = free_port()
        r = run("up", "--data-dir", str(first.data_dir), "--port", str(port), timeout=30)
        assert r.returncode != 0
        line = one_error_line(r.stderr)
        assert f"in use by process {first.proc.pid}" in line and "--data-dir" in line, line
        assert first.http.get("/healthz").json()["peer_id"] == first.peer_id  # the first one is untouched
        r = cli("id", "--data-dir", str(first.data_dir))
        assert r.exit_code == 0 and r.stdout.strip() == first.peer_id  # `id` reads a locked directory
    finally:
        first.close()
    DataDirLock(first.data_dir).acquire().release()  # the lock ended with its process


def test_up_prints_where_it_is_and_where_the_token_is_never_the_token(tmp_path) -> None:
    port = free_port()
    data_dir, log = tmp_path / "node", tmp_path / "up.out"
    env = {k: v for k, v in os.environ.items() if not k.startswith("F0MESH_")}
    with log.open("w") as sink:
        proc = subprocess.Popen(
            [*F0MESH, "up", "--data-dir", str(data_dir), "--port", str(port), "--log-level", "warning"],
            stdout=sink,
            stderr=subprocess.STDOUT,
            env=env,
        )
    try:
        text = wait_for(
            lambda: "admin token" in (t := log.read_text()) and t.endswith("\n") and t, 30, what="the block"
        )
        token = (data_dir / "admin.token").read_text().strip()
        url = f"http://127.0.0.1:{port}"
        peer_id = cli("id", "--data-dir", str(data_dir)).stdout.strip()
        assert re.search(rf"URL\s+{re.escape(url)}\n", text), text
        assert re.search(rf"PeerId\s+{peer_id}\n", text), text
        assert re.search(rf"dashboard\s+{re.escape(url)}/", text), text
        assert re.search(rf"admin token\s+{re.escape(str((data_dir / 'admin.token').resolve()))}\n", text), (
            text
        )
        assert token not in text
    finally:
        proc.terminate()
        assert proc.wait(timeout=20) == 0


# -- client subcommands against real nodes ---------------------------------------------------------


def _fits(stdout: str, width: int = 80) -> list[str]:
    lines = stdout.splitlines()
    assert lines and all(len(line) <= width for line in lines), stdout
    return lines


def test_client_subcommands_at_80_columns(tmp_path) -> None:
    a = NodeProcess(tmp_path / "a", extra=["--qos-interval", "1"]).start()
    b = NodeProcess(tmp_path / "b", extra=["--private-read", "--qos-interval", "1"]).start()
    try:
        auth = ["--admin-token", TOKEN]
        assert a.dial(b).status_code == 200
        wait_for(lambda: len(b.open_links()) == 1, 15, what="link on b")
        tail_a, tail_b = a.peer_id[-8:], b.peer_id[-8:]

        # links: the tail of the PeerId (every id starts 12D3KooW), one row per link, 80 columns
        r = cli("links", "--node", b.url)
        assert r.exit_code != 0 and "unauthorized" in one_error_line(r.stderr)  # --private-read
        r = run("links", "--node", b.url.removeprefix("http://"), env={"F0MESH_ADMIN_TOKEN": TOKEN})
        assert r.returncode == 0, r.stderr
        rows = [line for line in _fits(r.stdout) if tail_a in line]
        assert len(rows) == 1 and "open" in rows[0] and "12D3KooW" not in r.stdout, r.stdout
        r = cli("links", "--node", b.url, *auth, "--wide")
        assert r.exit_code == 0 and a.peer_id in r.stdout
        r = cli("links", "--node", b.url, *auth, "--json")
        assert [row["peer_id"] for row in json.loads(r.stdout)] == [a.peer_id]

        r = run("peers", "--node", a.url)
        assert r.returncode == 0 and any(tail_b in line and "linked" in line for line in _fits(r.stdout))

        # messages: published on a, read on b, the payload cut to fit
        long_payload = json.dumps({"text": "x" * 300})
        assert cli("publish", "ops", long_payload, "--node", a.url, *auth).exit_code == 0
        wait_for(
            lambda: b.http.get("/api/gossip/messages", params={"topic": "ops"}).json()["messages"],
            15,
            what="the message on b",
        )
        r = run("messages", "--node", b.url, *auth, "--topic", "ops")
        rows = [line for line in _fits(r.stdout) if line.split()[2:3] == ["ops"]]
        assert len(rows) == 1 and f"…{tail_a}" in rows[0] and '{"text":"xxx' in rows[0], r.stdout
        r = cli("messages", "--node", b.url, *auth, "--topic", "ops", "--json")
        assert json.loads(r.stdout)[0]["payload"] == {"text": "x" * 300}

        # state: documents, one document's value
        assert a.http.put("/api/state/ops", json={"kind": "map", "value": {"k": 1}}).status_code == 200
        r = run("state", "--node", a.url)
        assert r.returncode == 0 and any(line.split()[:2] == ["ops", "map"] for line in _fits(r.stdout))
        assert json.loads(cli("state", "ops", "--node", a.url).stdout) == {"k": 1}

        # trust: set an opinion by the tail the tables show, then read it back
        r = cli("trust", f"…{tail_b}", "0.7", "--node", a.url, *auth)
        assert r.exit_code == 0, r.stderr
        assert "set to 0.7" in r.stdout
        r = cli("trust", "--node", a.url, "--json")
        edge = json.loads(r.stdout)["own_edges"][b.peer_id]  # the opinion, plus a little for good behaviour
        assert 0.7 <= edge < 0.8, edge
        r = run("trust", "--node", a.url)
        # the edge keeps growing a little between the two reads: the table's two decimals within 0.01
        (row,) = [line for line in _fits(r.stdout) if tail_b in line]
        assert any(abs(float(x) - edge) <= 0.011 for x in re.findall(r"\b\d\.\d\d\b", row)), (edge, r.stdout)

        # close, then block and unblock; without a token each is one line
        r = run("close", tail_b, "--node", a.url)
        assert r.returncode != 0 and "--admin-token" in one_error_line(r.stderr)
        r = run("close", tail_b, "--node", a.url, *auth)
        assert r.returncode == 0 and b.peer_id in r.stdout, r.stderr
        wait_for(lambda: not a.open_links(), 10, what="the link closed")
        r = run("close", b.peer_id, "--node", a.url, *auth)
        assert r.returncode != 0 and "no live link" in one_error_line(r.stderr)
        r = run("block", tail_b, "--node", a.url, "--data-dir", str(tmp_path / "nowhere"), *auth)
        assert r.returncode == 0 and "is blocked" in r.stdout, r.stderr
        assert any(
            tail_b in line and "blocked" in line for line in _fits(run("peers", "--node", a.url).stdout)
        )
        r = run("block", tail_b, "--undo", "--node", a.url, *auth)
        assert r.returncode == 0 and "no longer blocked" in r.stdout
    finally:
        a.close()
        b.close()
