import pytest

from f0mesh.errors import ConfigError
from f0mesh.gossip.params import GossipParams


def test_defaults_are_consistent():
    params = GossipParams()
    assert (params.d_lo, params.d, params.d_hi, params.ttl, params.heartbeat_s) == (4, 6, 8, 16, 1.0)
    assert params.seen_ttl_s >= params.replay_window_s + params.max_clock_skew_s
    assert params.batch_max_bytes >= params.max_message_bytes


@pytest.mark.parametrize(
    "bad",
    [
        {"d": 0},
        {"d_lo": 7},  # above d
        {"system_d_lo": 4},  # above system_d
        {"system_d_hi": 0},
        {"d_hi": 5},  # below d
        {"heartbeat_s": 0},
        {"ttl": 0},
        {"ttl": 256},
        {"max_retries": -1},
        {"floor_weight": 1.5},
        {"ack_timeout_s": 0},
        {"replay_window_s": float("inf")},
        {"batch_linger_s": -0.1},
        {"seen_ttl_s": 10.0},  # shorter than the replay window: old duplicates would slip through
        {"batch_max_bytes": 1024},  # cannot hold one maximum-size envelope
        {"repair_digest_size": 2.5},
    ],
)
def test_bad_values_fail_at_construction_naming_the_field(bad):
    with pytest.raises(ConfigError) as info:
        GossipParams(**bad)
    assert next(iter(bad)) in str(info.value)
