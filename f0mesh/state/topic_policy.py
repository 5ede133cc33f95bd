"""Publish policies of gossip topics, kept in the reserved replicated map TOPICS_DOC.

A topic's creator writes the entry (topic, creator) -> {"created": [wall_ms, logical], "publishers": [...]},
signed as every op is; the creator always publishes. It is the documents' write policy (state.policy) for a
topic: only the creator writes its own entry, the earliest-stamped create wins a race (ties by creator id),
a backdated create or a changed create stamp is refused, and a creator holds at most a bounded number of
entries. A topic without a policy is open to every origin.
"""

from __future__ import annotations

from typing import Any

from f0mesh.gossip.topics import WILDCARD, is_topic
from f0mesh.identity import is_peer_id
from f0mesh.state.policy import MAX_WRITERS, TOPICS_DOC, Policy

__all__ = ["MAX_PUBLISHERS", "TOPICS_DOC", "parse_topic_policy", "topic_entry", "topic_view"]
MAX_PUBLISHERS = MAX_WRITERS


def parse_topic_policy(key: object, author: str, value: object) -> Policy:
    """An entry's meaning as a Policy whose writers are the publishers; ValueError when malformed or not
    written by the creator it names."""
    if not (isinstance(key, tuple) and len(key) == 2 and all(isinstance(k, str) for k in key)):
        raise ValueError("a topic policy key is (topic, creator)")
    topic, creator = key
    if not is_topic(topic) or topic == WILDCARD:
        raise ValueError(f"bad topic in a topic policy: {topic[:80]!r}")
    if creator != author:
        raise ValueError(f"the policy of topic {topic!r} by {creator[:60]} was written by {author[:60]}")
    if not isinstance(value, dict) or set(value) != {"created", "publishers"}:
        raise ValueError(f"the policy of topic {topic!r} is not {{created, publishers}}")
    created, publishers = value["created"], value["publishers"]
    if not (
        isinstance(created, list)
        and len(created) == 2
        and all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in created)
    ):
        raise ValueError(f"the policy of topic {topic!r} has a bad create stamp")
    if not isinstance(publishers, list) or len(publishers) > MAX_PUBLISHERS:
        raise ValueError(f"the policy of topic {topic!r} must list at most {MAX_PUBLISHERS} publishers")
    if not all(isinstance(p, str) and is_peer_id(p) for p in publishers) or publishers != sorted(
        set(publishers)
    ):
        raise ValueError(f"the publishers of topic {topic!r} must be sorted distinct PeerIds")
    return Policy(topic, creator, (created[0], created[1]), frozenset({creator, *publishers}))


def topic_entry(policy: Policy) -> dict[str, Any]:
    return {"created": list(policy.created), "publishers": sorted(policy.writers - {policy.creator})}


def topic_view(policy: Policy) -> dict[str, Any]:
    return {
        "topic": policy.name,
        "creator": policy.creator,
        "created": list(policy.created),
        "publishers": sorted(policy.writers),
    }
