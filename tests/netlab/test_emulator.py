"""The link model of the emulator, in-process: no namespaces, only the arithmetic of one direction."""

import statistics

import pytest

from .emulator import Direction


def test_fifo_unless_reorder() -> None:
    fifo = Direction("0>1", {"delay_ms": 10, "jitter_ms": 8}, seed=1)
    times = [fifo.admit(100, i * 0.001) for i in range(500)]
    assert all(t is not None for t in times)
    assert times == sorted(times)
    free = Direction("0>1", {"delay_ms": 10, "jitter_ms": 8, "reorder": True}, seed=1)
    times = [free.admit(100, i * 0.001) for i in range(500)]
    assert times != sorted(times)
    delays = [t - i * 0.001 for i, t in enumerate(times)]
    assert min(delays) >= 0.002 and max(delays) <= 0.018
    assert statistics.fmean(delays) == pytest.approx(0.010, abs=0.001)


def test_normal_jitter_is_clipped_and_never_negative() -> None:
    d = Direction("1>0", {"delay_ms": 5, "jitter_ms": 4, "jitter_dist": "normal", "reorder": True}, seed=2)
    delays = [d.admit(100, 0.0) for _ in range(5000)]
    assert min(delays) >= 0.0 and max(delays) <= 0.005 + 0.012
    assert statistics.pstdev(delays) == pytest.approx(0.004, rel=0.15)  # clipping at 0 trims it a little


def test_loss_is_seeded_and_per_direction() -> None:
    def pattern(key: str, seed: int) -> list[bool]:
        d = Direction(key, {"loss_pct": 10}, seed=seed)
        return [d.admit(100, 0.0) is None for _ in range(2000)]

    a = pattern("0>1", 7)
    assert a == pattern("0>1", 7)
    assert a != pattern("1>0", 7) and a != pattern("0>1", 8)
    assert 150 <= sum(a) <= 250


def test_rate_serialises_and_tail_drops() -> None:
    d = Direction("0>1", {"rate_kbps": 1000, "queue_packets": 3, "delay_ms": 1}, seed=0)
    # 1250 bytes at 1000 kbps take 10 ms each; four arrive at once, the queue holds three.
    times = [d.admit(1250, 0.0) for _ in range(4)]
    assert times[:3] == pytest.approx([0.011, 0.021, 0.031])
    assert times[3] is None and d.counters["dropped_queue"] == 1
    assert d.admit(1250, 0.0105) == pytest.approx(0.041)  # the first left the queue at 10 ms


def test_unknown_parameter_rejected() -> None:
    with pytest.raises(ValueError, match="unknown"):
        Direction("0>1", {"latency": 5}, seed=0)
