"""LatestWriter: the latest row per key, written by one task, so writes of one key never overtake.

A task per write lets a slow write land after a later, faster one: a link stored as "open" after
its "closed" row was written stays "open" for good. Here one task writes, in queue order, and a
key queued again before its row was written keeps its place but takes the newer row (only the
latest state matters), so at most one row per key waits.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

from f0mesh.log_throttle import LogThrottle

log = logging.getLogger(__name__)

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

DEFAULT_MAX_PENDING = 1024


class LatestWriter(Generic[K, V]):
    def __init__(
        self, write: Callable[[V], Awaitable[None]], *, what: str, max_pending: int = DEFAULT_MAX_PENDING
    ) -> None:
        """``write(row)`` stores one row; ``what`` names the rows in log lines. Past ``max_pending``
        waiting keys the oldest waiting row is dropped (counted in ``dropped``), so a stalled store
        cannot grow memory without bound."""
        self._write = write
        self._what = what
        self._max_pending = max_pending
        self._pending: OrderedDict[K, V] = OrderedDict()
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self._log = LogThrottle(log)
        self.dropped = 0

    def put(self, key: K, row: V) -> None:
        if self._closed:
            return
        if key not in self._pending and len(self._pending) >= self._max_pending:
            self._pending.popitem(last=False)
            self.dropped += 1
            self._log.warning(
                "dropped", "dropped a %s row: %d are waiting for the store", self._what, self._max_pending
            )
        self._pending[key] = row
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name=f"latest-writer-{self._what}"
            )

    @property
    def pending(self) -> int:
        return len(self._pending)

    async def _run(self) -> None:
        try:
            while self._pending:
                _key, row = self._pending.popitem(last=False)
                try:
                    await self._write(row)
                except Exception:
                    self._log.log(
                        logging.ERROR, "failed", "could not store a %s row", self._what, exc_info=True
                    )
        finally:
            self._task = None

    async def close(self, timeout: float) -> None:
        """Write what is waiting (for at most ``timeout`` seconds), then take no more rows."""
        self._closed = True
        task = self._task
        if task is None:
            return
        await asyncio.wait({task}, timeout=timeout)
        if not task.done():
            log.warning("gave up on %d %s rows after %.0f s", len(self._pending), self._what, timeout)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
