"""A live node's /metrics follows the Prometheus naming guide (https://prometheus.io/docs/practices/naming/)."""

from __future__ import annotations

import re

from prometheus_client.parser import text_string_to_metric_families

from nodes import wait_for

FAST = ["--qos-interval", "1", "--probe-rate", "10"]
UNIT_IN_NAME = re.compile(r"_(ms|msec|millis\w*|pct|percent|kbps|kb|kib|mb|bits)(_|$)")


def _words(text: str) -> str:
    return " ".join(re.findall(r"[a-z0-9]+", text.lower()))


def test_live_metrics_follow_the_naming_rules(node_factory) -> None:
    a, b = node_factory.many("a", "b", extra=FAST)
    assert a.dial(b).status_code == 200
    wait_for(lambda: b.link_to(a.peer_id) and b.link_to(a.peer_id)["rtt_ms"] is not None, 20, 0.3, "QoS")
    assert a.http.post("/api/gossip", json={"topic": "chat", "payload": "hello"}).status_code == 200
    text = wait_for(
        lambda: (
            (t := b.http.get("/metrics").text)
            and 'f0mesh_gossip_topic_messages_delivered_total{topic="chat"} 1.0' in t
            and t
        ),
        20,
        0.3,
        "the message counted at b",
    )
    families = {f.name: f for f in text_string_to_metric_families(text)}
    helps = dict(re.findall(r"^# HELP (\S+) (.*)$", text, re.M))
    types = dict(re.findall(r"^# TYPE (\S+) (\S+)$", text, re.M))
    samples = [s for f in families.values() for s in f.samples]

    assert not [s.name for s in samples if s.name.endswith("_created")]
    for name, kind in types.items():
        assert name.startswith(("f0mesh_", "process_")), name
        assert not UNIT_IN_NAME.search(name), f"{name}: base units (seconds, ratios, bytes) only"
        help_ = helps.get(name, "")
        bare = name.removeprefix("f0mesh_").removesuffix("_total")
        assert len(help_.split()) >= 3 and _words(help_) not in (_words(name), _words(bare)), (name, help_)
        if kind == "counter":
            assert name.endswith("_total"), name
    counters = [f for f in families.values() if f.type == "counter"]
    assert counters and all(s.name.endswith("_total") for f in counters for s in f.samples)

    build = [s for s in samples if s.name == "f0mesh_build_info"]
    assert len(build) == 1 and build[0].value == 1
    assert build[0].labels["version"] == b.http.get("/healthz").json()["version"]
    assert re.fullmatch(r"3\.\d+\.\d+\S*", build[0].labels["python"])

    latency = families["f0mesh_gossip_delivery_latency_seconds"]
    assert latency.type == "histogram"
    bounds = {s.labels["le"] for s in latency.samples if s.name.endswith("_bucket")}
    assert {"0.001", "60.0", "+Inf"} <= bounds
    count = next(s.value for s in latency.samples if s.name.endswith("_count"))
    total = next(s.value for s in latency.samples if s.name.endswith("_sum"))
    assert count >= 1 and 0 <= total / count < 60

    topical = [f for f in families.values() if "_topic_" in f.name]
    assert topical and all("topic" in s.labels for f in topical for s in f.samples)
    delivered = families["f0mesh_gossip_topic_messages_delivered"].samples
    assert any(s.labels["topic"] == "chat" and s.value >= 1 for s in delivered)

    by_name = {(s.name, s.labels.get("peer_id")): s.value for s in samples}
    assert 0 < by_name["f0mesh_link_rtt_seconds", a.peer_id] < 1
    assert 0 <= by_name["f0mesh_link_loss_ratio", a.peer_id] <= 1
    assert by_name["f0mesh_link_received_bytes_total", a.peer_id] > 0
