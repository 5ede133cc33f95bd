"""Topic subscriptions: this node's, and what each neighbour announced (GossipSub's SUBSCRIBE).

A node carries, stores and relays only the topics it subscribes to; system topics are always
subscribed. ``*`` subscribes to every topic: it is what a node started without ``--topic`` holds,
so a mesh set up before topics existed keeps delivering everything. A neighbour that never
announced its subscriptions (a node of the previous wire version) is taken as subscribed to
everything, as GossipSub v1.1 treats v1.0 peers.

Announcements and mesh control (GRAFT/PRUNE) ride ``ihave`` messages with an empty id list, as
extra keys a previous wire version ignores: a new message kind would be refused as malformed and
held against the sender. An announcement is the whole list, so a lost or reordered one is healed by
the next.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable
from typing import Any

from f0mesh.gossip.errors import GossipReject, Reason

WILDCARD = "*"
MAX_TOPICS = 256  # per announcement, and subscriptions per node
MAX_TOPIC_CHARS = 128
_TOPIC = re.compile(rf"[A-Za-z0-9_.:/-]{{1,{MAX_TOPIC_CHARS}}}")


def is_topic(value: object) -> bool:
    """A topic name a subscription may hold (``*`` included); the same alphabet as publishing."""
    return isinstance(value, str) and (value == WILDCARD or _TOPIC.fullmatch(value) is not None)


def check_topics(value: Any) -> list[str]:
    """A peer's topic list, or GossipReject(malformed)."""
    if not isinstance(value, list) or len(value) > MAX_TOPICS or not all(is_topic(t) for t in value):
        limits = f"at most {MAX_TOPICS} names of 1-{MAX_TOPIC_CHARS} characters"
        raise GossipReject(Reason.MALFORMED, f"topics must be a list of {limits}")
    return list(dict.fromkeys(value))


class TooManyTopics(ValueError):
    pass


class Subscriptions:
    def __init__(self, topics: Iterable[str] = (), always: Collection[str] = ()) -> None:
        """``topics``: the node's own (none: ``*``); ``always``: system topics, never left."""
        self.always = frozenset(always)
        own = set(topics) - self.always
        if not all(is_topic(t) for t in own):
            raise ValueError(f"topic names are 1-{MAX_TOPIC_CHARS} characters of A-Za-z0-9_.:/- or *")
        if len(own) > MAX_TOPICS:
            raise TooManyTopics(f"at most {MAX_TOPICS} topics")
        self._own: set[str] = own if topics else {WILDCARD}
        self._peers: dict[str, frozenset[str]] = {}
        self.version = 0  # bumped by every change, so what was derived from subscriptions can be cached

    @property
    def own(self) -> list[str]:
        """The topics joined (``*`` for all), system topics apart."""
        return sorted(self._own)

    def named(self) -> list[str]:
        """The topics subscribed by name (system ones included): each gets a mesh without waiting for
        a message."""
        return sorted((self._own | self.always) - {WILDCARD})

    def is_named(self, topic: str) -> bool:
        return topic in self.always or (topic != WILDCARD and topic in self._own)

    def announcement(self) -> list[str]:
        return sorted(self._own | self.always)

    def subscribed(self, topic: str) -> bool:
        return topic in self.always or WILDCARD in self._own or topic in self._own

    def join(self, topic: str) -> bool:
        """Whether this changed anything. Raises ValueError for a bad name, TooManyTopics past the cap."""
        if not is_topic(topic):
            raise ValueError(f"{topic[:40]!r} is not a topic name")
        if topic in self._own or topic in self.always:
            return False
        if len(self._own) >= MAX_TOPICS:
            raise TooManyTopics(f"already subscribed to {MAX_TOPICS} topics")
        self._own.add(topic)
        self.version += 1
        return True

    def leave(self, topic: str) -> bool:
        """Whether this changed anything; system topics cannot be left (ValueError)."""
        if topic in self.always:
            raise ValueError(f"{topic!r} is a system topic, always subscribed")
        if topic not in self._own:
            return False
        self._own.discard(topic)
        self.version += 1
        return True

    # neighbours

    def announced(self, peer: str, topics: list[str]) -> None:
        self._peers[peer] = frozenset(topics)
        self.version += 1

    def speaks_topics(self, peer: str) -> bool:
        """Whether the neighbour announced subscriptions (this wire version), so GRAFT/PRUNE apply."""
        return peer in self._peers

    def wants(self, peer: str, topic: str) -> bool:
        topics = self._peers.get(peer)
        return topics is None or WILDCARD in topics or topic in topics

    def of(self, peer: str) -> list[str] | None:
        """What a neighbour announced; None: it never did (everything)."""
        topics = self._peers.get(peer)
        return None if topics is None else sorted(topics)

    def forget(self, peer: str) -> None:
        if self._peers.pop(peer, None) is not None:
            self.version += 1
