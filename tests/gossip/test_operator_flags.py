"""The --gossip-* flags of `f0mesh up`: carried into GossipParams, bad values refused naming the flag."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from f0mesh.config import NodeConfig
from f0mesh.errors import ConfigError
from f0mesh.flags import node_config
from f0mesh.gossip import GossipParams


def test_flags_reach_the_nodes_gossip_params_and_unset_ones_keep_the_defaults(tmp_path):
    given = {"--gossip-d": 8, "--gossip-d-hi": 16, "--gossip-ttl": 20, "--gossip-heartbeat": 0.5}
    config = node_config(tmp_path, given)
    assert (config.gossip.d, config.gossip.d_lo, config.gossip.d_hi) == (8, GossipParams().d_lo, 16)
    assert (config.gossip.ttl, config.gossip.heartbeat_s) == (20, 0.5)
    assert NodeConfig(data_dir=tmp_path).gossip == GossipParams()


@pytest.mark.parametrize(
    ("bad", "flag"),
    [
        ({"--gossip-d": 0}, "--gossip-d:"),
        ({"--gossip-d-lo": 7}, "--gossip-d-lo"),  # above the default d
        ({"--gossip-d-hi": 100}, "--gossip-d-hi:"),
        ({"--gossip-ttl": 256}, "--gossip-ttl:"),
        ({"--gossip-heartbeat": 0.0}, "--gossip-heartbeat:"),
        ({"--gossip-heartbeat": float("inf")}, "--gossip-heartbeat:"),
    ],
)
def test_bad_values_are_one_config_error_naming_the_flag(tmp_path, bad, flag):
    with pytest.raises(ConfigError) as info:
        node_config(tmp_path, bad)
    assert flag in str(info.value)


def test_gossip_params_built_in_code_are_checked_as_the_flags_are(tmp_path):
    with pytest.raises(ConfigError, match="--gossip-d-hi:"):
        NodeConfig(data_dir=tmp_path, gossip=GossipParams(d_hi=100))


def test_up_refuses_a_bad_flag_or_variable_with_one_line(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("F0MESH_")}
    for args, extra_env, flag in (
        (["--gossip-d", "0"], {}, "--gossip-d"),
        ([], {"F0MESH_GOSSIP_TTL": "0"}, "--gossip-ttl"),
    ):
        result = subprocess.run(
            [sys.executable, "-m", "f0mesh", "up", "--data-dir", str(tmp_path), *args],
            capture_output=True,
            text=True,
            timeout=60,
            env={**env, **extra_env},
        )
        assert result.returncode != 0 and "Traceback" not in result.stderr
        errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
        assert len(errors) == 1 and flag in errors[0], result.stderr
