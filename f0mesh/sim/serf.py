"""Serf's convergence model, the reference curve the simulated f0mesh is compared with.

HashiCorp's convergence simulator (serf.io/docs/internals/simulator) models SWIM-style push gossip
as a logistic epidemic in rounds of one gossip interval, each infected node telling ``fanout``
random members per round:

    contact  = fanout / n * (1 - loss) * (1 - failed) * 0.5
    infected = n / (1 + (n + 1) * exp(-contact * n * round))

With its defaults (fanout 3, 200 ms rounds) it gives the published figures: 99.9 % of 1,000 nodes
in 2.0 s, of 10,000 in 2.2 s, and of 1,000 nodes at 50 % packet loss in 3.8 s. Serf's page stops at
99.99 %; "100 %" here is the first round with fewer than half a node left uninformed.
"""

from __future__ import annotations

import math

SERF_INTERVAL_S = 0.2
SERF_FANOUT = 3
MAX_ROUNDS = 1000


def fraction_at(
    n: int, rounds: float, *, fanout: int = SERF_FANOUT, loss: float = 0.0, failed: float = 0.0
) -> float:
    """Expected informed fraction after ``rounds`` gossip rounds (fractional rounds allowed)."""
    contact = fanout / n * (1.0 - loss) * (1.0 - failed) * 0.5
    return 1.0 / (1.0 + (n + 1) * math.exp(-contact * n * rounds)) if n else 1.0


def target_fraction(n: int, fraction: float) -> float:
    """ "100 %" is under half a node left, and never an easier target than 99.9 % (for small n)."""
    return max(1.0 - 0.5 / n, 0.999) if fraction >= 1.0 else fraction


def rounds_to(n: int, fraction: float, *, fanout: int = SERF_FANOUT, loss: float = 0.0) -> int:
    """The first whole round at which the model reaches ``fraction`` (1.0: under half a node left)."""
    target = target_fraction(n, fraction)
    for rounds in range(MAX_ROUNDS):
        if fraction_at(n, rounds, fanout=fanout, loss=loss) >= target:
            return rounds
    return MAX_ROUNDS


def time_to(
    n: int,
    fraction: float,
    *,
    fanout: int = SERF_FANOUT,
    loss: float = 0.0,
    interval_s: float = SERF_INTERVAL_S,
) -> float:
    """Seconds to ``fraction`` as Serf's simulator reports it (whole rounds x interval)."""
    return round(rounds_to(n, fraction, fanout=fanout, loss=loss) * interval_s, 6)


def messages_to(n: int, fraction: float, *, fanout: int = SERF_FANOUT, loss: float = 0.0) -> int:
    """Gossip messages sent until ``fraction``: every informed node sends ``fanout`` per round.

    A lower bound for Serf itself, which keeps retransmitting each message for several rounds.
    """
    total = 0.0
    for rounds in range(rounds_to(n, fraction, fanout=fanout, loss=loss)):
        total += fanout * n * fraction_at(n, rounds, fanout=fanout, loss=loss)
    return round(total)


def curve(
    n: int,
    *,
    fanout: int = SERF_FANOUT,
    loss: float = 0.0,
    interval_s: float = SERF_INTERVAL_S,
    until_s: float = 10.0,
    step_s: float = 0.02,
) -> list[tuple[float, float]]:
    """(seconds, informed fraction) points of the model, for plotting beside simulated coverage."""
    points = []
    steps = int(until_s / step_s)
    for i in range(steps + 1):
        t = i * step_s
        points.append((t, fraction_at(n, t / interval_s, fanout=fanout, loss=loss)))
    return points


def summary(n: int, loss: float = 0.0, fanout: int = SERF_FANOUT) -> dict[str, float | int]:
    """Seconds and messages to 50 / 99 / 99.9 / 100 % under Serf's model."""
    out: dict[str, float | int] = {}
    for label, fraction in (("50", 0.5), ("99", 0.99), ("99.9", 0.999), ("100", 1.0)):
        out[f"t{label}_s"] = time_to(n, fraction, fanout=fanout, loss=loss)
        out[f"messages{label}"] = messages_to(n, fraction, fanout=fanout, loss=loss)
    return out
