"""In-process event bus behind /api/events (server-sent events).

Each subscriber has a bounded queue; a subscriber too slow to keep up loses its oldest events
rather than growing the node's memory, and is told how many it missed.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

QUEUE_SIZE = 256
PRIVATE_TOPICS = frozenset({"direct"})  # decrypted direct messages: the admin token's streams only


class Subscription:
    def __init__(self) -> None:
        self.queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(QUEUE_SIZE)
        self.dropped = 0

    def put(self, event: dict[str, Any]) -> None:
        if self.queue.full():
            with contextlib.suppress(asyncio.QueueEmpty):
                self.queue.get_nowait()
                self.dropped += 1
        self.queue.put_nowait(event)

    def take_dropped(self) -> int:
        """Events lost since the last call: the consumer reports them, then the count starts again."""
        dropped, self.dropped = self.dropped, 0
        return dropped


class EventBus:
    """How many may subscribe is the API's business (per-client and admin slots, api/limits.py)."""

    def __init__(self) -> None:
        self._subscribers: set[Subscription] = set()

    @property
    def listening(self) -> bool:
        """Whether anyone subscribes: an event nobody takes need not be built (one per message)."""
        return bool(self._subscribers)

    def publish(self, topic: str, data: dict[str, Any]) -> None:
        event = {"topic": topic, "at": time.time(), "data": data}
        for subscription in list(self._subscribers):
            subscription.put(event)

    @contextlib.asynccontextmanager
    async def subscribe(self) -> AsyncIterator[Subscription]:
        subscription = Subscription()
        self._subscribers.add(subscription)
        try:
            yield subscription
        finally:
            self._subscribers.discard(subscription)
