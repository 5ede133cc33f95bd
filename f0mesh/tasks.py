"""Background tasks that are kept, logged when they fail, and stopped together.

A bare ``create_task`` whose result nobody reads loses its exception (asyncio only complains at
garbage collection, if at all) and can be collected while running. Every part that starts work in the
background holds a ``TaskSet``: it keeps a reference until the task ends, logs a failure once with the
set's name, and ``close`` cancels what is left within a bounded wait.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

from f0mesh.errors import F0MeshError

log = logging.getLogger(__name__)


class TaskSet:
    def __init__(self, name: str, logger: logging.Logger | None = None) -> None:
        self.name = name
        self._log = logger or log
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closed = False

    def spawn(self, coro: Coroutine[Any, Any, Any], *, name: str | None = None) -> asyncio.Task[Any] | None:
        """Start ``coro``; None (and the coroutine closed unrun) once the set is closed."""
        if self._closed:
            coro.close()
            return None
        task = asyncio.get_running_loop().create_task(coro, name=name or f"{self.name}-task")
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if task.cancelled():
            return
        exc = task.exception()
        if isinstance(exc, F0MeshError):  # an operating condition (a store down, a peer gone), in words
            self._log.warning("%s: background task %s failed: %s", self.name, task.get_name(), exc.detail)
        elif exc is not None:
            self._log.warning(
                "%s: background task %s failed: %r", self.name, task.get_name(), exc, exc_info=exc
            )

    def __len__(self) -> int:
        return len(self._tasks)

    def cancel(self) -> None:
        """Refuse new work and cancel every task but the caller's own, without waiting: for an owner
        that shuts down from inside one of its own tasks (waiting there would wait on itself)."""
        self._closed = True
        current = asyncio.current_task()
        for task in list(self._tasks):
            if task is not current:
                task.cancel()

    async def close(self, timeout: float = 5.0, *, grace: float | None = None) -> None:
        """Let running tasks finish for up to ``grace`` seconds (default ``timeout``), then cancel the
        rest and wait up to ``timeout`` for them."""
        self._closed = True
        grace = timeout if grace is None else grace
        if self._tasks and grace > 0:
            await asyncio.wait(set(self._tasks), timeout=grace)
        pending = set(self._tasks)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending, timeout=timeout)
