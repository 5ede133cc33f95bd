"""How many links the connection manager keeps: its own module so that configuration reads it
without importing aiortc."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class DegreeParams:
    d_lo: int = 4
    d_target: int = 6
    d_hi: int = 12
    interval_s: float = 2.0
    dial_failure_cooldown_s: float = 30.0
    closed_by_peer_cooldown_s: float = 120.0
    max_parallel_dials: int = 3
    bridge_grace_s: float = 10.0
    # one bridge dial per interval: a young mesh has heard from nobody yet, and a bridge every tick
    # pushed every node to D_hi and its neighbours past it (link churn, then pruning)
    bridge_interval_s: float = 10.0
