"""Idle cost: the periodic telemetry summary is skipped while change-driven ones keep the mesh's view
fresh, and its period is jittered so nodes started together do not publish in the same second."""

from __future__ import annotations

import asyncio
import random
from types import SimpleNamespace

from f0mesh.config import NodeConfig
from f0mesh.tasks import TaskSet
from f0mesh.telemetry import PERIOD_JITTER, Telemetry

from .kit import FakeGossip, FakeLink, FakeLinks


class _Stamped(FakeGossip):
    def __init__(self) -> None:
        super().__init__()
        self.at: list[float] = []

    async def publish(self, topic: str, payload: object) -> str:
        self.at.append(asyncio.get_running_loop().time())
        return await super().publish(topic, payload)


def _telemetry(
    tmp_path, interval: float, rng: random.Random, gossip: FakeGossip
) -> tuple[Telemetry, TaskSet]:
    config = NodeConfig(data_dir=tmp_path, admin_token="t" * 32, gossip_interval=interval)
    tasks = TaskSet("test")
    links = FakeLinks(FakeLink("P1", link_id="L1"))
    service = Telemetry(config, gossip, links, SimpleNamespace(latest={}), tasks, rng=rng)  # type: ignore[arg-type]
    return service, tasks


async def test_a_change_driven_summary_restarts_the_period(tmp_path) -> None:
    interval = 0.4
    gossip = _Stamped()
    service, tasks = _telemetry(tmp_path, interval, random.Random(1), gossip)
    tasks.spawn(service.loop(), name="telemetry")
    try:
        await gossip.wait_published(1)  # the first periodic summary
        await asyncio.sleep(interval / 2)
        await service.publish()  # a link changed mid-period: the mesh has a fresh summary now
        changed_at, sent = gossip.at[-1], len(gossip.published)
        await gossip.wait_published(sent + 1)
        # the next periodic one waits a whole (jittered) period after the change-driven one; on a
        # fixed grid it came half an interval after the change
        assert gossip.at[sent] - changed_at >= interval * (1 - PERIOD_JITTER)
    finally:
        service.close()
        await tasks.close(1.0)


def test_periods_are_jittered_within_the_last_quarter_of_the_interval(tmp_path) -> None:
    service, _ = _telemetry(tmp_path, 60.0, random.Random(7), FakeGossip())
    periods = [service.next_period() for _ in range(200)]
    assert all(60.0 * (1 - PERIOD_JITTER) <= p <= 60.0 for p in periods)
    assert max(periods) - min(periods) > 10.0  # spread, not one value: nodes drift apart
