"""Application validators (GossipSub's topic validators): a topic's own say on what is relayed.

A validator sees a message that already passed the engine's own checks (signature, time, limits)
and answers accept (stored, delivered, forwarded), reject (dropped, and the neighbour that sent it
pays in score: it relayed something invalid) or ignore (dropped, nobody pays: a message this node
cannot judge or does not want). A validator that times out, fails or is called while
``concurrency`` others run counts as ignore, so a slow application throttles itself, not the mesh.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable
from enum import StrEnum

from f0mesh.gossip.store import StoredMessage

log = logging.getLogger(__name__)


class Verdict(StrEnum):
    ACCEPT = "accept"
    REJECT = "reject"
    IGNORE = "ignore"


Validator = Callable[[StoredMessage], Awaitable[Verdict] | Verdict]


class Validators:
    def __init__(self, timeout_s: float, concurrency: int) -> None:
        self._timeout_s = timeout_s
        self._concurrency = concurrency
        self._by_topic: dict[str, Validator] = {}
        self.running = 0
        self.throttled = 0  # ignored because ``concurrency`` validations were running
        self.timed_out = 0

    def __contains__(self, topic: object) -> bool:
        return topic in self._by_topic

    def add(self, topic: str, fn: Validator) -> Callable[[], None]:
        """One validator per topic (a second replaces the first); returns the function that removes it."""
        self._by_topic[topic] = fn
        return lambda: self._by_topic.pop(topic, None) if self._by_topic.get(topic) is fn else None

    async def check(self, message: StoredMessage) -> Verdict:
        fn = self._by_topic.get(message.topic)
        if fn is None:
            return Verdict.ACCEPT
        if self.running >= self._concurrency:
            self.throttled += 1
            return Verdict.IGNORE
        self.running += 1
        try:
            async with asyncio.timeout(self._timeout_s):
                result = fn(message)
                if inspect.isawaitable(result):
                    result = await result
        except TimeoutError:
            self.timed_out += 1
            return Verdict.IGNORE
        except Exception:
            log.exception("gossip validator of topic %r failed on %s", message.topic, message.id)
            return Verdict.IGNORE
        finally:
            self.running -= 1
        try:
            return Verdict(result)
        except ValueError:
            log.error("gossip validator of topic %r returned %r, not a Verdict", message.topic, result)
            return Verdict.IGNORE
