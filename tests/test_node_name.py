"""Node names (``--name``) and the demo's world locations."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from f0mesh.config import NodeConfig
from f0mesh.demo import Mesh
from f0mesh.errors import ConfigError


@pytest.mark.parametrize("name", ["", "x" * 33, "tab\there", "new\nline"])
def test_bad_name_is_a_config_error(tmp_path, name: str) -> None:
    with pytest.raises(ConfigError, match="--name"):
        NodeConfig(data_dir=tmp_path, name=name)


def test_good_names_pass(tmp_path) -> None:
    for name in ("berlin-1", "x" * 32, "São Paulo", "a"):
        assert NodeConfig(data_dir=tmp_path, name=name).name == name


def test_up_with_a_bad_name_fails_in_one_line(tmp_path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("F0MESH_")}
    r = subprocess.run(
        [sys.executable, "-m", "f0mesh", "up", "--data-dir", str(tmp_path / "d"), "--name", "x" * 33],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert r.returncode != 0
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "--name" in r.stderr


def test_demo_nodes_are_spread_over_named_world_locations(tmp_path) -> None:
    mesh = Mesh(14, 9000, tmp_path, "t")
    places = []
    for i in range(mesh.n):
        argv = mesh.argv(i)
        lat, lon = (float(v) for v in argv[argv.index("--location") + 1].split(","))
        assert -90 <= lat <= 90 and -180 <= lon <= 180
        places.append((argv[argv.index("--name") + 1], round(lat), round(lon)))
    names = [p[0] for p in places]
    assert len(set(names)) == len(names)  # every node named apart, also past the list's end
    assert len({p[1:] for p in places}) >= 12 and {p[1] > 0 for p in places} == {True, False}
