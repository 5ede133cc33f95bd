"""The limits on what strangers may cost are NodeConfig fields; none can be switched off by a bad value."""

from __future__ import annotations

import pytest

from f0mesh.config import NodeConfig
from f0mesh.errors import ConfigError


@pytest.mark.parametrize(
    "field, bad",
    [
        ("pex_min_trust", -0.1),
        ("pex_min_trust", 1000.0),
        ("peer_store_max", 0),
        ("dial_rate", 0.0),
        ("dial_burst", 0),
        ("gc_interval_s", 0.0),
        ("stranger_retention_s", -1.0),
        ("link_rows_max", -1),
        ("reassembly_total_bytes", 1024),
        ("state_writers", ["not-a-peer-id"]),
    ],
)
def test_stranger_limits_are_validated(tmp_path, field: str, bad: object) -> None:
    with pytest.raises(ConfigError):
        NodeConfig(data_dir=tmp_path, **{field: bad})


def test_stranger_flags_read_f0mesh_variables(tmp_path, monkeypatch) -> None:
    """typer fills NodeConfig from F0MESH_* variables; the flags exist and parse."""
    from typer.testing import CliRunner

    from f0mesh.cli import app

    monkeypatch.setenv("F0MESH_PEX_MIN_TRUST", "-5")
    result = CliRunner().invoke(app, ["up", "--data-dir", str(tmp_path / "d"), "--port", "1"])
    assert result.exit_code == 2 and "--pex-min-trust" in result.output, result.output
