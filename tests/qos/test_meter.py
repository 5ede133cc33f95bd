import pytest

from f0mesh.qos.estimators import LinkQoS
from f0mesh.qos.meter import LinkMeter
from f0mesh.qos.probe import answer_ping


def _round(meter: LinkMeter, clock, rtt_s: float | None) -> None:
    ping = meter.ping()
    if rtt_s is not None:
        clock.advance(rtt_s / 2)
        pong = answer_ping(ping, clock)
        clock.advance(rtt_s / 2)
        meter.on_pong(pong)


def test_nothing_measured_is_none(clock) -> None:
    assert LinkMeter(clock).snapshot() == LinkQoS()


def test_windows_reset_except_running_estimates(clock) -> None:
    m = LinkMeter(clock, timeout_s=2.0)
    m.add_bytes(0, 0)
    for rtt in (0.020, 0.040, None, 0.030):
        _round(m, clock, rtt)
        clock.advance(1.0)
    m.add_bytes(10_000, 5_000)
    first = m.snapshot()
    assert first.rtt_ms == pytest.approx(30.0)
    assert first.rtt_p95_ms == pytest.approx(40.0)
    assert (first.probes_sent, first.probes_answered, first.probes_lost) == (4, 3, 1)
    assert first.loss_pct == pytest.approx(25.0)
    assert first.jitter_ms is not None and first.jitter_ms > 0
    span = 4 * 1.0 + 0.090  # four seconds of pacing plus the RTTs spent waiting
    assert first.tx_kbps == pytest.approx(80 / span)
    assert first.rx_kbps == pytest.approx(40 / span)
    assert first.bitrate_kbps == pytest.approx(120 / span)

    clock.advance(1.0)
    second = m.snapshot()
    assert (second.rtt_ms, second.rtt_p95_ms, second.loss_pct, second.bitrate_kbps) == (None,) * 4
    assert (second.probes_sent, second.probes_answered, second.probes_lost) == (0, 0, 0)
    assert second.jitter_ms == first.jitter_ms
    assert second.rtt_srtt_ms == first.rtt_srtt_ms


def test_probe_pending_at_window_end_is_decided_in_next_window(clock) -> None:
    m = LinkMeter(clock, timeout_s=2.0)
    _round(m, clock, 0.010)
    m.ping()  # never answered
    clock.advance(0.5)
    first = m.snapshot()
    assert (first.probes_sent, first.probes_answered, first.probes_lost, first.loss_pct) == (2, 1, 0, 0.0)
    clock.advance(2.0)
    second = m.snapshot()
    assert (second.probes_sent, second.probes_lost, second.loss_pct) == (0, 1, 100.0)


def test_snapshot_without_reset_keeps_window(clock) -> None:
    m = LinkMeter(clock)
    _round(m, clock, 0.050)
    assert m.snapshot(reset=False).rtt_ms == pytest.approx(50.0)
    assert m.snapshot().rtt_ms == pytest.approx(50.0)
    assert m.snapshot().rtt_ms is None
