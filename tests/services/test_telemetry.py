"""Telemetry: one summary per burst of link changes, at most one per gap; what is heard from whom."""

from __future__ import annotations

import asyncio
import time
from types import SimpleNamespace

import pytest

from f0mesh import telemetry as telemetry_module
from f0mesh.config import NodeConfig
from f0mesh.tasks import TaskSet
from f0mesh.telemetry import TELEMETRY_TOPIC, Telemetry

from .kit import FakeGossip, FakeLink, FakeLinks


@pytest.fixture
async def telemetry(tmp_path):
    config = NodeConfig(data_dir=tmp_path, admin_token="t" * 32, name="n1", gossip_interval=30.0)
    sample = SimpleNamespace(health="good", rtt_ms=1.5, jitter_ms=0.1, loss_pct=0.0, bitrate_kbps=9.0)
    qos = SimpleNamespace(latest={"L1": sample})
    links = FakeLinks(FakeLink("P1", link_id="L1"), FakeLink("P2", link_id="L2"))
    tasks = TaskSet("test")
    gossip = FakeGossip()
    service = Telemetry(config, gossip, links, qos, tasks)  # type: ignore[arg-type]
    service.test_gossip = gossip  # type: ignore[attr-defined]
    yield service
    service.close()
    await tasks.close(1.0)


async def test_a_burst_of_changes_is_one_summary_and_the_next_waits_for_the_gap(telemetry, monkeypatch):
    monkeypatch.setattr(telemetry_module, "BURST_S", 0.01)
    monkeypatch.setattr(telemetry_module, "TELEMETRY_MIN_GAP_S", 0.2)
    gossip = telemetry.test_gossip
    for _ in range(50):
        telemetry.schedule()
    await gossip.wait_published(1)
    sent = asyncio.get_running_loop().time()
    for _ in range(50):
        telemetry.schedule()
    due = telemetry._due
    assert due is not None and due.when() >= sent + 0.2 - 0.02  # held back to the gap: one timer
    await gossip.wait_published(2)
    assert len(gossip.published) == 2 and telemetry._due is None


async def test_the_summary_carries_open_links_with_their_figures_or_unknown(telemetry) -> None:
    topic, _ = TELEMETRY_TOPIC, await telemetry.publish()
    [(sent_topic, summary)] = telemetry.test_gossip.published
    assert sent_topic == topic
    assert summary["name"] == "n1" and summary["url"].startswith("http")
    unknown = {"health": "unknown", "rtt_ms": None, "jitter_ms": None, "loss_pct": None, "bitrate_kbps": None}
    good = {"health": "good", "rtt_ms": 1.5, "jitter_ms": 0.1, "loss_pct": 0.0, "bitrate_kbps": 9.0}
    assert summary["links"] == [{"peer_id": "P1", **good}, {"peer_id": "P2", **unknown}]


async def test_heard_origins_and_received_summaries(telemetry) -> None:
    gossip = telemetry.test_gossip
    now = time.time()
    gossip.deliver("A", "chat", "hi", now)
    gossip.deliver("B", TELEMETRY_TOPIC, {"links": []}, now)
    gossip.deliver("C", TELEMETRY_TOPIC, "not a summary", now)
    gossip.deliver("D", "chat", "long ago", now - 2 * telemetry.interval - 11)
    assert telemetry.heard_recently() == {"A", "B", "C"}
    assert telemetry.received == {"B": {"links": [], "received_at": now}}
    view = telemetry.mesh_view("ME")
    assert set(view) == {"B", "ME"} and view["ME"]["received_at"] is None


async def test_nothing_is_scheduled_after_close(telemetry) -> None:
    telemetry.close()
    telemetry.schedule()
    assert telemetry._due is None


async def test_fifty_invented_origins_cannot_grow_the_tables_or_push_out_trusted_ones(tmp_path) -> None:
    """#20: telemetry of 50 invented nodes was kept whole; now at most max_origins, least trusted out."""
    config = NodeConfig(data_dir=tmp_path, admin_token="t" * 32, gossip_interval=30.0)
    gossip = FakeGossip()
    trusted = [f"H{n}" for n in range(8)]
    scores = dict.fromkeys(trusted, 0.1)
    tasks = TaskSet("test")
    service = Telemetry(
        config, gossip, FakeLinks(), SimpleNamespace(latest={}), tasks, scores=lambda: scores, max_origins=32
    )  # type: ignore[arg-type]
    now = time.time()
    for origin in trusted[:4] + [f"FAKE{n}" for n in range(50)] + trusted[4:]:
        gossip.deliver(origin, TELEMETRY_TOPIC, {"links": []}, now)
    assert len(service.received) == 32 and len(service.heard_recently()) == 32
    assert set(trusted) <= set(service.received) and set(trusted) <= service.heard_recently()
    service.close()
    await tasks.close(1.0)
