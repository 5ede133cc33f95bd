"""`f0mesh up`'s flags, NodeConfig and the profiles agree: one default, one variable, one table."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import typer

from f0mesh import cli, serve
from f0mesh.config import NodeConfig
from f0mesh.errors import ConfigError
from f0mesh.flags import BY_NAME, BY_PATH, FLAGS, node_config, readme_table
from f0mesh.profiles import PROFILES

README = Path(__file__).resolve().parents[1] / "README.md"


def _value(config: NodeConfig, path: str) -> Any:
    value: Any = config
    for part in path.split("."):
        value = getattr(value, part)
    return value


@pytest.fixture
def parse(monkeypatch):
    """The NodeConfig ``f0mesh up ARGS`` would serve (the serve loop is replaced)."""
    for key in [k for k in os.environ if k.startswith("F0MESH_")]:
        monkeypatch.delenv(key)
    seen: list[NodeConfig] = []
    monkeypatch.setattr(serve, "run", lambda config, *args, **kwargs: seen.append(config))

    def run(*args: str) -> NodeConfig:
        cli.app(["up", *args], standalone_mode=False)
        return seen.pop()

    return run


def test_the_readme_holds_the_generated_flag_table() -> None:
    hint = "python -c 'from f0mesh.flags import readme_table; print(readme_table())'"
    assert readme_table() in README.read_text(), f"README.md's flag table is stale: {hint}"


def test_up_takes_each_flag_with_its_variable_and_the_dataclass_default() -> None:
    command = typer.main.get_command(cli.app).commands["up"]
    options = {p.opts[0]: p for p in command.params if p.opts and p.opts[0].startswith("--")}
    assert set(options) == set(BY_NAME)
    for flag in FLAGS:
        option = options[flag.name]
        assert option.envvar == flag.env, flag.name
        assert option.default == flag.default, flag.name
    assert options["--gossip-d"].default == NodeConfig(data_dir=Path(".")).gossip.d
    assert options["--d-hi"].default == NodeConfig(data_dir=Path(".")).degree.d_hi


def test_flags_reach_their_config_values(parse, tmp_path) -> None:
    given: dict[str, Any] = {
        "--port": 9001,
        "--qos-interval": 5.0,
        "--d-lo": 2,
        "--d": 5,
        "--d-hi": 9,
        "--gossip-ttl": 9,
        "--gossip-heartbeat": 2.0,
        "--heartbeat-timeout": 8.0,
        "--connect-timeout": 5.0,
        "--peer-refresh": 90.0,
        "--pex-min-trust": 1.5,
        "--gc-interval": 30.0,
        "--name": "lab-1",
    }
    args = [x for name, value in given.items() for x in (name, str(value))]
    config = parse("--data-dir", str(tmp_path), *args, "--private-read", "--bootstrap", "http://127.0.0.1:9")
    for name, value in given.items():
        assert _value(config, BY_NAME[name].path or "") == value, name
    assert config.open_read is False and config.bootstrap == ["http://127.0.0.1:9"]
    assert config.heartbeat_interval == 2.0


def test_given_flags_and_variables_override_the_profile_and_defaults_do_not(parse, tmp_path, monkeypatch):
    monkeypatch.setenv("F0MESH_QOS_INTERVAL", "7")
    config = parse("--data-dir", str(tmp_path), "--profile", "large", "--probe-rate", "3", "--port", "8700")
    assert (config.probe_rate, config.qos_interval) == (3.0, 7.0)
    large = PROFILES["large"]
    assert config.gossip_interval == large["gossip_interval"]
    assert config.degree.d_hi == large["degree.d_hi"]
    assert config.heartbeat_timeout == large["heartbeat_timeout"]
    assert parse("--data-dir", str(tmp_path)).probe_rate == NodeConfig(data_dir=tmp_path).probe_rate


@pytest.mark.parametrize("name", sorted(PROFILES))
def test_every_profile_sets_only_values_a_flag_sets(name, tmp_path) -> None:
    assert set(PROFILES[name]) <= set(BY_PATH)
    config = node_config(tmp_path, {}, name)
    for path, value in PROFILES[name].items():
        assert _value(config, path) == value


def test_derived_values_hold_for_a_config_built_in_code(tmp_path) -> None:
    assert NodeConfig(data_dir=tmp_path, heartbeat_timeout=12.0).heartbeat_interval == 3.0


@pytest.mark.parametrize(
    ("given", "profile", "flag"),
    [
        ({}, "huge", "--profile"),
        ({"--d-lo": 5, "--d": 4}, None, "--d-lo"),
        ({"--d-hi": -1}, None, "--d-hi:"),
        ({"--heartbeat-timeout": 0.0}, None, "--heartbeat-timeout:"),
        ({"--connect-timeout": 0.5}, None, "--connect-timeout:"),
        ({"--peer-refresh": 5.0}, None, "--peer-refresh:"),
        ({"--peer-refresh": 200.0}, "large", "--peer-refresh:"),
        ({"--gossip-d-lo": 9}, "large", "--gossip-d-lo"),
        ({"--port": 0}, "small", "--port"),
    ],
)
def test_a_bad_value_is_one_config_error_naming_its_flag(tmp_path, given, profile, flag) -> None:
    with pytest.raises(ConfigError) as info:
        node_config(tmp_path, given, profile)
    assert flag in info.value.detail
