"""Packaging: the wheel's metadata, the lock against pyproject's ranges, and a node free of scipy/networkx
and of SQLAlchemy's asyncio layer (its ORM, greenlet, the async drivers)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest
from packaging.requirements import Requirement

REPO = Path(__file__).resolve().parents[1]
HEAVY = ("scipy", "networkx", "numpy", "matplotlib")
# The store runs SQLAlchemy Core on sync drivers in its own threads (issue #25): these cost memory only.
NOT_RUN_TIME = ("sqlalchemy.orm", "sqlalchemy.ext", "greenlet", "aiosqlite", "asyncpg")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out, src = tmp_path_factory.mktemp("wheel"), tmp_path_factory.mktemp("src")
    # a copy, so setuptools' build/ and egg-info land there and not in the checkout
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy2(REPO / name, src / name)
    shutil.copytree(REPO / "f0mesh", src / "f0mesh", ignore=shutil.ignore_patterns("__pycache__"))
    r = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(out), str(src)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    (built,) = out.glob("f0mesh-*.whl")
    return built


def test_wheel_requires_nothing_heavy_at_run_time(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
        (meta_name,) = [n for n in names if n.endswith(".dist-info/METADATA")]
        meta = Parser().parsestr(z.read(meta_name).decode())
    requires = [Requirement(r) for r in meta.get_all("Requires-Dist")]
    runtime = {r.name.lower() for r in requires if r.marker is None}
    assert "aiortc" in runtime and not runtime & {*HEAVY, "psycopg", "asyncpg", "aiosqlite"}, runtime
    assert not [r for r in requires if r.name.lower() == "sqlalchemy" and r.extras], "no [asyncio] extra"
    extras = {r.name.lower(): str(r.marker) for r in requires if r.marker is not None}
    assert extras["psycopg"] == 'extra == "postgres"' and extras["matplotlib"] == 'extra == "sim"'
    assert extras["networkx"] == extras["scipy"] == 'extra == "test"'
    # ranges, not pins: every runtime dependency has a floor and a ceiling (the test and bench
    # tools are pinned on purpose: the bench compares against one py-libp2p release)
    for r in requires:
        if r.marker is None or not {"test", "bench"} & set(str(r.marker).split('"')):
            ops = {s.operator for s in r.specifier}
            assert ops == {">=", "<"}, r
    assert meta["License-Expression"] == "Apache-2.0" and "Typing :: Typed" in meta.get_all("Classifier")
    assert {u.split(",")[0] for u in meta.get_all("Project-URL")} >= {"Homepage", "Source", "Issues"}
    assert "f0mesh/py.typed" in names and "f0mesh/dashboard/static/index.html" in names
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    assert not [n for n in names if n.startswith(("tests/", "bench/"))]


def test_lock_pins_every_runtime_dependency_within_its_range() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    lines = (REPO / "requirements.lock").read_text().splitlines()
    pins = dict(line.lower().replace("_", "-").split("==") for line in lines if line and line[0] != "#")
    wanted = [Requirement(r) for r in project["dependencies"] + project["optional-dependencies"]["postgres"]]
    for req in wanted:
        version = pins.get(req.name.lower().replace("_", "-"))
        assert version is not None and req.specifier.contains(version), (req, version)
    assert not set(pins) & set(HEAVY)


NODE_SCRIPT = """
import asyncio, sys, tempfile
from pathlib import Path
import f0mesh.cli
from f0mesh.api.app import create_app
from f0mesh.config import NodeConfig
from f0mesh.node import Node

async def main():
    with tempfile.TemporaryDirectory() as d:
        node = Node(NodeConfig(data_dir=Path(d), admin_token="t" * 24))
        await node.start()
        create_app(node, manage_node=False)
        node.trust.set_opinion("12D3KooWsomeoneelse", 0.8)  # recomputes the scores at once
        assert node.trust.scores()["12D3KooWsomeoneelse"] > 0
        node.metrics.render()
        await node.stop()

asyncio.run(main())
heavy = {m.split(".")[0] for m in sys.modules} & set(HEAVY)
print(",".join(sorted(heavy | {m for m in sys.modules if m.startswith(NOT_RUN_TIME)})))
"""


def test_a_running_node_imports_neither_scipy_networkx_nor_an_orm() -> None:
    r = subprocess.run(
        [sys.executable, "-c", f"HEAVY = {HEAVY!r}\nNOT_RUN_TIME = {NOT_RUN_TIME!r}\n{NODE_SCRIPT}"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.strip() == "", f"imported at run time: {r.stdout.strip()}"


def test_readme_renders_on_a_package_index() -> None:
    """A package index shows README.md away from the repository: images need absolute URLs."""
    readme = (REPO / "README.md").read_text()
    images = re.findall(r"!\[[^\]]*\]\(([^)\s]+)", readme)
    assert images and all(url.startswith("https://") for url in images), images
    assert "pip install f0mesh" in readme and "pip install 'f0mesh[postgres]'" in readme
