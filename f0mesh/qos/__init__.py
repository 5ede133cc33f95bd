"""Link quality: probes, estimators (RTT, RFC 3550 jitter, loss, bitrate), per-link meter, health."""

from f0mesh.qos.estimators import (
    BitrateMeter,
    JitterEstimator,
    LinkQoS,
    LossEstimator,
    RttEstimator,
    percentile_nearest_rank,
)
from f0mesh.qos.health import DEFAULT_THRESHOLDS, Health, HealthThresholds, classify
from f0mesh.qos.meter import LinkMeter
from f0mesh.qos.probe import (
    DEFAULT_TIMEOUT_S,
    Clock,
    ProbeError,
    ProbeOutcome,
    ProbeSender,
    answer_ping,
    decode_probe,
    encode_probe,
    is_pong,
)

__all__ = [
    "DEFAULT_THRESHOLDS",
    "DEFAULT_TIMEOUT_S",
    "BitrateMeter",
    "Clock",
    "Health",
    "HealthThresholds",
    "JitterEstimator",
    "LinkMeter",
    "LinkQoS",
    "LossEstimator",
    "ProbeError",
    "ProbeOutcome",
    "ProbeSender",
    "RttEstimator",
    "answer_ping",
    "classify",
    "decode_probe",
    "encode_probe",
    "is_pong",
    "percentile_nearest_rank",
]
