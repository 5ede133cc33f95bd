"""LinkMeter: one link's probe state and estimators, closed into a LinkQoS once per sampling interval.

The sampler calls ``snapshot()`` every interval; that ends the window for the window figures (RTT
median/p95, loss, bitrate) while SRTT and jitter keep running, since a smoothed estimate restarted
every interval would mostly show its own warm-up.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from f0mesh.qos.estimators import BitrateMeter, LinkQoS
from f0mesh.qos.probe import DEFAULT_TIMEOUT_S, Clock, ProbeOutcome, ProbeSender


class LinkMeter:
    """Owns the ProbeSender and estimators of one link; transport-agnostic and clock-injectable."""

    def __init__(self, clock: Clock = time.monotonic, *, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        self._clock = clock
        self.prober = ProbeSender(clock, timeout_s=timeout_s)
        self.bitrate = BitrateMeter()

    def ping(self) -> dict[str, Any]:
        return self.prober.ping()

    def on_pong(self, pong: Mapping[str, Any]) -> ProbeOutcome:
        return self.prober.on_pong(pong)

    def add_bytes(self, bytes_sent_total: int, bytes_recv_total: int) -> None:
        """Sample the link's cumulative byte counters (all channels) at the meter's clock."""
        self.bitrate.add(bytes_sent_total, bytes_recv_total, self._clock())

    def snapshot(self, *, reset: bool = True) -> LinkQoS:
        """The figures of the current window; with ``reset`` (the sampler's case) a new window starts."""
        p = self.prober
        p.expire()
        rates = self.bitrate.rates_kbps()
        qos = LinkQoS(
            rtt_ms=p.rtt.median(),
            rtt_srtt_ms=p.rtt.srtt,
            rtt_p95_ms=p.rtt.p95(),
            jitter_ms=p.jitter.value,
            loss_pct=p.loss.loss_pct,
            bitrate_kbps=None if rates is None else rates[0] + rates[1],
            tx_kbps=None if rates is None else rates[0],
            rx_kbps=None if rates is None else rates[1],
            probes_sent=p.loss.sent,
            probes_answered=p.loss.answered,
            probes_lost=p.loss.lost,
        )
        if reset:
            p.rtt.reset_window()
            p.loss.reset_window()
            self.bitrate.reset_window()
        return qos
