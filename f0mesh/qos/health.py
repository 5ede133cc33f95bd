"""Link health: one word per link from a LinkQoS snapshot, for the dashboard, the API and routing.

Defaults follow common interactive-traffic guidance (ITU-T G.114 puts one-way delay under ~150 ms as
good for interaction; real-time media degrades noticeably past ~2 % loss and ~30 ms jitter). "bad"
means the link is barely usable: heavy loss, half-second RTT, or nothing answered at all.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from f0mesh.qos.estimators import LinkQoS


class Health(StrEnum):
    GOOD = "good"
    DEGRADED = "degraded"
    BAD = "bad"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class HealthThresholds:
    """Good needs every figure strictly below its good limit; bad needs any figure at or above its bad
    limit, or a window in which probes were decided and none was answered. RTT is the window median."""

    good_rtt_ms: float = 150.0
    good_loss_pct: float = 2.0
    good_jitter_ms: float = 30.0
    bad_rtt_ms: float = 500.0
    bad_loss_pct: float = 10.0

    def __post_init__(self) -> None:
        if not 0 < self.good_rtt_ms <= self.bad_rtt_ms:
            raise ValueError("need 0 < good_rtt_ms <= bad_rtt_ms")
        if not 0 < self.good_loss_pct <= self.bad_loss_pct <= 100:
            raise ValueError("need 0 < good_loss_pct <= bad_loss_pct <= 100")
        if self.good_jitter_ms <= 0:
            raise ValueError("good_jitter_ms must be positive")


DEFAULT_THRESHOLDS = HealthThresholds()


def classify(qos: LinkQoS, thresholds: HealthThresholds = DEFAULT_THRESHOLDS) -> Health:
    """Classify one window; unknown while neither RTT nor loss has been measured."""
    t = thresholds
    if qos.probes_answered == 0 and qos.probes_lost > 0:
        return Health.BAD
    rtt, loss, jitter = qos.rtt_ms, qos.loss_pct, qos.jitter_ms
    if rtt is None and loss is None:
        return Health.UNKNOWN
    if (loss is not None and loss >= t.bad_loss_pct) or (rtt is not None and rtt >= t.bad_rtt_ms):
        return Health.BAD
    # Jitter needs two answers ever, so a link's first answer alone does not hold "good" back.
    good = (
        rtt is not None
        and rtt < t.good_rtt_ms
        and (loss is None or loss < t.good_loss_pct)
        and (jitter is None or jitter < t.good_jitter_ms)
    )
    return Health.GOOD if good else Health.DEGRADED
