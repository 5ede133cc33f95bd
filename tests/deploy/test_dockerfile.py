"""deploy/Dockerfile without a Docker engine: its steps, replayed in a fresh venv.

The COPY steps lay the build context out under a temporary root exactly as the image would hold
it; every ``pip install`` of a RUN step runs with a new venv's pip, its absolute paths moved under
that root, and ``rm -rf`` of the source follows, as in the image; then the installed ``f0mesh``
must work from there: ``f0mesh id``, ``f0mesh up`` with the image's F0MESH_* settings (moved to
loopback), the dashboard's packaged assets, and the image's HEALTHCHECK command. ``--no-cache-dir``
is dropped so that pip may reuse this machine's cache; the step is otherwise the image's.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from nodes import free_port

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "deploy" / "Dockerfile"
PIP_TIMEOUT_S = 480  # a cold cache downloads aiortc, av, cryptography...: generous, still bounded


def instructions(text: str) -> list[tuple[str, str]]:
    """(KEYWORD, arguments) per instruction, continuation lines joined, comments dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line = pending + line
        pending = ""
        keyword, _, args = line.partition(" ")
        out.append((keyword.upper(), args.strip()))
    return out


def _env_pairs(args: str) -> dict[str, str]:
    return dict(token.split("=", 1) for token in shlex.split(args))


def test_dockerfile_shape() -> None:
    steps = instructions(DOCKERFILE.read_text())
    keywords = [k for k, _ in steps]
    assert steps[0] == ("FROM", "python:3.11-slim")
    user = [a for k, a in steps if k == "USER"]
    assert user and user[-1].split(":")[0] not in ("root", "0")
    # Nothing runs as root after the switch, and the user is created by a RUN before it.
    last_user = max(i for i, k in enumerate(keywords) if k == "USER")
    assert all(k != "RUN" for k in keywords[last_user:])
    assert any(re.search(rf"useradd .*\b{user[-1].split(':')[0]}$", a) for k, a in steps if k == "RUN")
    env = {k: v for kw, a in steps if kw == "ENV" for k, v in _env_pairs(a).items()}
    exposed = {p for k, a in steps if k == "EXPOSE" for p in a.split()}
    assert f"{env['F0MESH_PORT']}/tcp" in exposed
    healthcheck = [a for k, a in steps if k == "HEALTHCHECK"]
    assert len(healthcheck) == 1 and " CMD " in f" {healthcheck[0]} "
    assert ("ENTRYPOINT", '["f0mesh"]') in steps and ("CMD", '["up"]') in steps
    # dependencies install from the lock in a layer of their own, before any source is copied
    lock = next(i for i, (k, a) in enumerate(steps) if k == "RUN" and "-r /src/requirements.lock" in a)
    source = next(i for i, (k, a) in enumerate(steps) if k == "COPY" and a.split()[0] == "f0mesh")
    assert lock < source and all(k != "COPY" or "f0mesh" not in a for k, a in steps[:lock])
    assert any(k == "RUN" and "--no-deps /src" in a for k, a in steps[source:])


def test_dockerignore_admits_exactly_what_the_image_copies() -> None:
    """An allowlist: a .venv or data directory in the checkout never reaches the build context."""
    rules = [r for r in (REPO / ".dockerignore").read_text().splitlines() if r and not r.startswith("#")]
    assert rules[0] == "*"
    allowed = {r[1:].rstrip("/") for r in rules if r.startswith("!")}
    copied = {
        src for k, a in instructions(DOCKERFILE.read_text()) if k == "COPY" for src in shlex.split(a)[:-1]
    }
    assert copied == allowed, (copied, allowed)
    assert all((REPO / src).exists() for src in copied)


def _replay(steps: list[tuple[str, str]], root: Path, python: Path) -> None:
    """COPY and the pip/rm parts of RUN, with the image's paths moved under ``root``."""
    workdir = "/"

    def inside(path: str) -> Path:
        return root / Path(workdir, path).relative_to("/") if not path.startswith("/") else root / path[1:]

    for keyword, args in steps:
        if keyword == "WORKDIR":
            workdir = str(Path(workdir, args))
        elif keyword == "COPY":
            *sources, dest = shlex.split(args)
            target = inside(dest)
            for source in sources:
                src = REPO / source
                into_dir = dest.endswith("/") or len(sources) > 1
                path = target / src.name if into_dir else target
                path.parent.mkdir(parents=True, exist_ok=True)
                if src.is_dir():
                    shutil.copytree(src, path, ignore=shutil.ignore_patterns("__pycache__"))
                else:
                    shutil.copy2(src, path)
        elif keyword == "RUN":
            for part in args.split("&&"):
                words = shlex.split(part)
                if words[:2] == ["pip", "install"]:
                    argv = [str(python), "-m", "pip", "install", "-q"]
                    argv += [
                        str(inside(w)) if w.startswith("/") else w for w in words[2:] if w != "--no-cache-dir"
                    ]
                    r = subprocess.run(argv, capture_output=True, text=True, timeout=PIP_TIMEOUT_S)
                    assert r.returncode == 0, r.stderr[-3000:]
                elif words[:2] == ["pip", "check"]:
                    r = subprocess.run([str(python), "-m", "pip", "check"], capture_output=True, text=True)
                    assert r.returncode == 0, r.stdout + r.stderr
                elif words[:2] == ["rm", "-rf"]:
                    for w in words[2:]:
                        shutil.rmtree(inside(w))


@pytest.mark.timeout(PIP_TIMEOUT_S + 120)
def test_dockerfile_install_steps_in_a_fresh_venv(tmp_path: Path) -> None:
    steps = instructions(DOCKERFILE.read_text())
    root, venv = tmp_path / "image", tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    _replay(steps, root, python)
    assert not (root / "src").exists()  # the image drops its source tree after the install
    f0mesh = venv / "bin" / "f0mesh"
    clean = {k: v for k, v in os.environ.items() if not k.startswith("F0MESH_")}

    r = subprocess.run(
        [str(f0mesh), "id", "--data-dir", str(tmp_path / "data")],
        capture_output=True,
        text=True,
        timeout=60,
        env=clean,
    )
    assert r.returncode == 0 and r.stdout.startswith("12D3KooW"), r.stderr
    peer_id = r.stdout.strip()

    image_env = {k: v for kw, a in steps if kw == "ENV" for k, v in _env_pairs(a).items()}
    port = free_port()
    env = {**clean, **image_env, "F0MESH_DATA_DIR": str(tmp_path / "data"), "F0MESH_HOST": "127.0.0.1"}
    env["F0MESH_PORT"] = str(port)
    healthcheck = json.loads(next(a for k, a in steps if k == "HEALTHCHECK").split(" CMD ", 1)[1])
    assert healthcheck[0] == "python"
    check = [str(python), str(root / healthcheck[1].lstrip("/"))]

    log = (tmp_path / "up.log").open("wb")
    proc = subprocess.Popen([str(f0mesh), "up"], stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        deadline = time.monotonic() + 30
        while subprocess.run(check, env=env, capture_output=True, timeout=10).returncode != 0:
            assert proc.poll() is None, (tmp_path / "up.log").read_text()[-2000:]
            assert time.monotonic() < deadline, "the HEALTHCHECK never passed"
            time.sleep(0.3)
        health = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=10).json()
        assert health["peer_id"] == peer_id  # the same identity the image's volume would keep
        page = httpx.get(f"http://127.0.0.1:{port}/", timeout=10)
        assert page.status_code == 200 and "<html" in page.text.lower()  # package data installed
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        log.close()
    assert proc.returncode == 0
    down = subprocess.run(check, env=env, capture_output=True, text=True, timeout=10)
    assert down.returncode == 1 and "unhealthy" in down.stderr
