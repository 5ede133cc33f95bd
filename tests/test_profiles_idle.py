"""The `large` profile's QoS rates: cheap on an idle link, yet enough probes per sample and enough
frames to keep a quiet link alive within its heartbeat timeout; its registry refresh: half as often,
yet twice within the time after which a silent peer is marked gone."""

from __future__ import annotations

from f0mesh.config import NodeConfig
from f0mesh.profiles import PROFILES
from f0mesh.qos.sampler import QoSSampler
from f0mesh.state import StateParams

MIN_PROBES_PER_SAMPLE = 5


def _config(tmp_path, name: str) -> NodeConfig:
    return NodeConfig(data_dir=tmp_path, **{k: v for k, v in PROFILES[name].items() if "." not in k})


def test_large_probes_at_most_one_per_4_s_per_side(tmp_path) -> None:
    # 32 idle nodes with 0.5 probes/s per link spent 5 % of a core each, a third of it on probes
    assert _config(tmp_path, "large").probe_rate <= 0.25


def test_every_profile_keeps_enough_probes_per_sample_and_a_live_quiet_link(tmp_path) -> None:
    for name in ("small", "large"):
        config = _config(tmp_path, name)
        assert config.qos_interval * config.probe_rate >= MIN_PROBES_PER_SAMPLE, name
        # a quiet link hears the peer's pings and pongs to its own: at least twice per timeout
        assert 1 / config.probe_rate <= config.heartbeat_timeout / 2, name
        sampler = QoSSampler(interval=config.qos_interval, probe_rate=config.probe_rate, on_sample=_none)
        # a probe is lost after two periods, before the sample that counts it
        assert sampler.probe_timeout_s < config.qos_interval, name


def test_large_refreshes_the_registry_half_as_often_yet_twice_before_gone(tmp_path) -> None:
    refresh = _config(tmp_path, "large").peer_refresh_s
    default = StateParams()
    assert refresh >= 2 * default.peer_refresh_s
    assert 2 * refresh <= default.gone_after_s


async def _none(samples: object) -> None:
    return None
