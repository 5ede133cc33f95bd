"""Per-topic counters stay bounded whatever topics peers publish on."""

from __future__ import annotations

from f0mesh.gossip.stats import MAX_TOPIC_LABELS, OTHER_TOPIC, GossipStats


def test_topic_labels_are_bounded_and_the_rest_pooled() -> None:
    stats = GossipStats()
    for i in range(MAX_TOPIC_LABELS + 50):
        stats.count("delivered", f"junk{i}")
    stats.count("published", "junk0")  # a topic already labelled keeps its label
    stats.count("published", "late")
    topics = {labels["topic"] for _, _, labels, _ in stats.samples() if "topic" in labels}
    assert len(topics) == MAX_TOPIC_LABELS + 1 and OTHER_TOPIC in topics and "late" not in topics
    by = {(name, labels.get("topic")): value for name, _, labels, value in stats.samples()}
    assert by["topic_messages_delivered", OTHER_TOPIC] == 50
    assert by["topic_messages_published", "junk0"] == 1 and by["topic_messages_published", OTHER_TOPIC] == 1
    assert stats.delivered == MAX_TOPIC_LABELS + 50 and stats.published == 2
    names = [name for name, help_, _, _ in stats.samples()]
    assert all(help_ and help_.lower() != name.replace("_", " ") for name, help_, _, _ in stats.samples())
    assert "received_envelopes" in names
