import pytest

from f0mesh.qos.estimators import LinkQoS
from f0mesh.qos.health import Health, HealthThresholds, classify


def q(rtt: float | None = 50.0, loss: float | None = 0.0, jitter: float | None = 5.0, **kw) -> LinkQoS:
    counts = {"probes_sent": 10, "probes_answered": 10, "probes_lost": 0} | kw
    return LinkQoS(rtt_ms=rtt, loss_pct=loss, jitter_ms=jitter, **counts)


@pytest.mark.parametrize(
    ("qos", "expected"),
    [
        (q(), Health.GOOD),
        (q(rtt=149.999), Health.GOOD),
        (q(rtt=150.0), Health.DEGRADED),
        (q(rtt=499.999), Health.DEGRADED),
        (q(rtt=500.0), Health.BAD),
        (q(loss=1.999), Health.GOOD),
        (q(loss=2.0), Health.DEGRADED),
        (q(loss=9.999), Health.DEGRADED),
        (q(loss=10.0), Health.BAD),
        (q(jitter=29.999), Health.GOOD),
        (q(jitter=30.0), Health.DEGRADED),
        (q(jitter=400.0), Health.DEGRADED),  # jitter alone never makes a link bad
        (q(jitter=None), Health.GOOD),  # first answer: no jitter yet
        (q(rtt=None, loss=100.0, jitter=None, probes_answered=0, probes_lost=3), Health.BAD),
        (q(rtt=None, loss=None, jitter=9.0, probes_answered=0, probes_lost=1), Health.BAD),
        (LinkQoS(), Health.UNKNOWN),
        (LinkQoS(probes_sent=2), Health.UNKNOWN),  # sent, none decided yet
    ],
)
def test_default_boundaries(qos: LinkQoS, expected: Health) -> None:
    assert classify(qos) is expected


def test_custom_thresholds() -> None:
    strict = HealthThresholds(
        good_rtt_ms=20, good_loss_pct=0.5, good_jitter_ms=2, bad_rtt_ms=100, bad_loss_pct=1
    )
    assert classify(q(rtt=19.0, jitter=1.0), strict) is Health.GOOD
    assert classify(q(rtt=20.0, jitter=1.0), strict) is Health.DEGRADED
    assert classify(q(rtt=50.0, loss=1.0), strict) is Health.BAD
    assert classify(q(), strict) is Health.DEGRADED


@pytest.mark.parametrize(
    "kw",
    [
        {"good_rtt_ms": 600.0},
        {"good_rtt_ms": 0.0},
        {"good_loss_pct": 20.0},
        {"bad_loss_pct": 101.0},
        {"good_jitter_ms": -1.0},
    ],
)
def test_inconsistent_thresholds_rejected(kw) -> None:
    with pytest.raises(ValueError):
        HealthThresholds(**kw)
