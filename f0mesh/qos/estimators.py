"""Link-quality estimators: RTT, RFC 3550 interarrival jitter, loss and bitrate.

Each is a small pure class fed by the probe state or by byte counters; times are passed in, never read,
so every figure is reproducible from a recorded series. "Window" values cover one sampling interval
and are cleared by ``reset_window``; smoothed values (SRTT/RTTVAR, jitter) run across windows, as
their RFCs define them.
"""

from __future__ import annotations

import math
import statistics
from collections import deque
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class LinkQoS:
    """One sampling interval of one link; a figure is None until it has been measured."""

    rtt_ms: float | None = None  # median of the window's RTT samples
    rtt_srtt_ms: float | None = None  # RFC 6298 smoothed RTT, running across windows
    rtt_p95_ms: float | None = None  # nearest-rank 95th percentile of the window
    jitter_ms: float | None = None  # RFC 3550 interarrival jitter, running across windows
    loss_pct: float | None = None  # lost / (answered + lost) among probes decided in the window
    bitrate_kbps: float | None = None  # tx + rx
    tx_kbps: float | None = None
    rx_kbps: float | None = None
    probes_sent: int = 0
    probes_answered: int = 0
    probes_lost: int = 0


def percentile_nearest_rank(values: list[float], pct: float) -> float:
    """Nearest-rank percentile: always an observed sample, so a p95 never invents a latency."""
    if not values:
        raise ValueError("percentile of no values")
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100.0 * len(ordered)))
    return ordered[rank - 1]


class RttEstimator:
    """Window median and p95 of RTT samples, plus RFC 6298 SRTT/RTTVAR over the link's life.

    The median is the headline figure because one delayed probe (a GC pause, a retransmitting
    neighbour) should not move it; p95 shows the tail; SRTT is the number TCP-like logic expects.
    """

    ALPHA = 1 / 8
    BETA = 1 / 4

    def __init__(self, max_samples: int = 4096) -> None:
        self._samples: deque[float] = deque(maxlen=max_samples)
        self.srtt: float | None = None
        self.rttvar: float | None = None

    def add(self, rtt_ms: float) -> None:
        if not math.isfinite(rtt_ms) or rtt_ms < 0:
            raise ValueError(f"RTT must be a finite non-negative number of ms, got {rtt_ms!r}")
        self._samples.append(rtt_ms)
        if self.srtt is None or self.rttvar is None:
            self.srtt = rtt_ms
            self.rttvar = rtt_ms / 2
        else:
            # RFC 6298 §2.3: RTTVAR is updated with the old SRTT, then SRTT.
            self.rttvar = (1 - self.BETA) * self.rttvar + self.BETA * abs(self.srtt - rtt_ms)
            self.srtt = (1 - self.ALPHA) * self.srtt + self.ALPHA * rtt_ms

    @property
    def count(self) -> int:
        return len(self._samples)

    def median(self) -> float | None:
        return statistics.median(self._samples) if self._samples else None

    def p95(self) -> float | None:
        return percentile_nearest_rank(list(self._samples), 95) if self._samples else None

    def reset_window(self) -> None:
        self._samples.clear()


class JitterEstimator:
    """RFC 3550 §6.4.1 interarrival jitter from send times and the peer's receive times.

    ``D = (R_i - R_{i-1}) - (S_i - S_{i-1})`` uses differences within each clock, so the offset between
    the two peers' clocks cancels; ``J += (|D| - J) / 16``. Samples are fed in order of arrival.
    """

    def __init__(self) -> None:
        self._prev: tuple[float, float] | None = None
        self._jitter: float | None = None

    def add(self, s_ms: float, r_ms: float) -> None:
        if self._prev is not None:
            d = (r_ms - self._prev[1]) - (s_ms - self._prev[0])
            j = self._jitter or 0.0
            self._jitter = j + (abs(d) - j) / 16.0
        self._prev = (s_ms, r_ms)

    @property
    def value(self) -> float | None:
        """The jitter in ms; None until two packets have arrived (no difference exists before)."""
        return self._jitter

    def reset(self) -> None:
        self._prev = None
        self._jitter = None


class LossEstimator:
    """Probe verdicts within the window.

    The loss ratio is lost / (answered + lost) over probes *decided* in the window, not over probes
    sent: a probe sent in the last ``timeout`` of a window has no verdict yet, and counting it either
    way would bias the figure. It is decided, and counted, in the next window.
    """

    def __init__(self) -> None:
        self.sent = 0
        self.answered = 0
        self.lost = 0

    def on_sent(self) -> None:
        self.sent += 1

    def on_answered(self) -> None:
        self.answered += 1

    def on_lost(self) -> None:
        self.lost += 1

    @property
    def loss_pct(self) -> float | None:
        decided = self.answered + self.lost
        return 100.0 * self.lost / decided if decided else None

    def reset_window(self) -> None:
        self.sent = self.answered = self.lost = 0


class BitrateMeter:
    """Bytes per second both ways on a link, from sampled cumulative byte counters.

    Input is ``add(bytes_sent_total, bytes_recv_total, t)``: the totals the transport already keeps
    for all channels (as webrtc-stats ``bytesSent``/``bytesReceived``), sampled whenever convenient.
    Counters are cheap to keep on the hot path and a missed sample loses no bytes. A total that goes
    down means the counter restarted (new transport), so its new value is taken as bytes since then.
    The last sample of a window is the baseline of the next, so consecutive windows tile time.
    kbps is 1000 bits per second.
    """

    def __init__(self) -> None:
        self._last: tuple[int, int, float] | None = None
        self._window_start: float | None = None
        self._tx_bytes = 0
        self._rx_bytes = 0

    def add(self, bytes_sent_total: int, bytes_recv_total: int, t: float) -> None:
        if bytes_sent_total < 0 or bytes_recv_total < 0:
            raise ValueError("byte counters cannot be negative")
        if self._last is not None:
            last_tx, last_rx, last_t = self._last
            if t < last_t:
                raise ValueError(f"bitrate samples must not go back in time ({t} < {last_t})")
            self._tx_bytes += bytes_sent_total - last_tx if bytes_sent_total >= last_tx else bytes_sent_total
            self._rx_bytes += bytes_recv_total - last_rx if bytes_recv_total >= last_rx else bytes_recv_total
        if self._window_start is None:
            self._window_start = t
        self._last = (bytes_sent_total, bytes_recv_total, t)

    def rates_kbps(self) -> tuple[float, float] | None:
        """(tx, rx) in kbps over the window, or None until two samples span some time."""
        if self._last is None or self._window_start is None:
            return None
        span = self._last[2] - self._window_start
        if span <= 0:
            return None
        return self._tx_bytes * 8 / 1000 / span, self._rx_bytes * 8 / 1000 / span

    def reset_window(self) -> None:
        self._tx_bytes = self._rx_bytes = 0
        self._window_start = self._last[2] if self._last is not None else None
