"""Idle cost: a node's periodic state jobs (registry refresh, anti-entropy round) start at a random
phase, so nodes started together do not all publish in the same second of every period."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

from f0mesh.state import manager


async def test_the_first_round_comes_at_a_random_phase_within_the_interval(monkeypatch) -> None:
    drawn: list[tuple[float, float]] = []

    def uniform(low: float, high: float) -> float:
        drawn.append((low, high))
        return 0.01

    monkeypatch.setattr(manager.random, "uniform", uniform)
    ran = asyncio.Event()
    task = asyncio.ensure_future(manager.ReplicatedState._every(SimpleNamespace(), 600.0, ran.set))  # type: ignore[arg-type]
    try:
        async with asyncio.timeout(5.0):  # a fixed phase would wait the whole 600 s interval first
            await ran.wait()
    finally:
        task.cancel()
    assert drawn == [(0.0, 600.0)]
