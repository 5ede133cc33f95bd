"""Write-behind queue: gossip rows reach the store in batches, one transaction per batch.

Per-row transactions would cap throughput at the database's commit rate; batching a few
milliseconds of rows costs that much latency and nothing else, because nothing is acknowledged
before its batch is committed (the callbacks run only then).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from f0mesh.errors import StoreUnavailableError
from f0mesh.gossip.audit import AuditRow
from f0mesh.gossip.params import GossipParams
from f0mesh.gossip.stats import GossipStats
from f0mesh.gossip.store import GossipStore, StoredMessage
from f0mesh.log_throttle import LogThrottle

log = logging.getLogger(__name__)

OnCommit = Callable[[Exception | None], None]


@dataclass(slots=True)
class _Item:
    messages: Sequence[StoredMessage]
    audit: Sequence[AuditRow]
    on_commit: OnCommit | None

    @property
    def rows(self) -> int:
        return len(self.messages) + len(self.audit)


class WriteBehind:
    def __init__(
        self,
        store: GossipStore,
        params: GossipParams,
        stats: GossipStats,
        *,
        after_batch: Callable[[], None] | None = None,
    ) -> None:
        """``after_batch()`` runs once the callbacks of each batch have: work they queued is done
        once per batch rather than once per item."""
        self._store = store
        self._after_batch = after_batch
        self._params = params
        self._stats = stats
        self._queue: deque[_Item] = deque()
        self._rows = 0
        self._submitted = 0
        self._done = 0
        self._wake = asyncio.Event()
        self._progress = asyncio.Condition()
        self._task: asyncio.Task[None] | None = None
        self._log = LogThrottle(log)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="gossip-writer")

    async def stop(self) -> None:
        """Commit what is queued, then stop."""
        if self._task is None:
            return
        await self.flush()
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None

    def submit(
        self,
        messages: Sequence[StoredMessage] = (),
        audit: Sequence[AuditRow] = (),
        on_commit: OnCommit | None = None,
        *,
        droppable: bool = False,
    ) -> None:
        """Queue rows; on_commit(None) runs after their transaction, on_commit(exc) if it failed.

        ``droppable`` rows (audit of rejections) are shed when the queue is over its limit, so a
        flood of garbage cannot grow memory without bound or starve real messages of the store.
        """
        item = _Item(messages, audit, on_commit)
        if droppable and self._rows + item.rows > self._params.write_queue_max_rows:
            self._stats.audit_rows_dropped += item.rows
            return
        self._queue.append(item)
        self._rows += item.rows
        self._submitted += 1
        self._wake.set()

    async def flush(self) -> None:
        """Wait until everything submitted so far has been committed (or has failed)."""
        target = self._submitted
        async with self._progress:
            await self._progress.wait_for(lambda: self._done >= target)

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            if self._rows < self._params.write_batch_rows and self._params.write_flush_interval_s > 0:
                await asyncio.sleep(self._params.write_flush_interval_s)
            batch: list[_Item] = []
            rows = 0
            while self._queue and (not batch or rows < self._params.write_batch_rows):
                item = self._queue.popleft()
                batch.append(item)
                rows += item.rows
            self._rows -= rows
            if not self._queue:
                self._wake.clear()
            if batch:
                await self._commit(batch)

    async def _commit(self, batch: list[_Item]) -> None:
        messages = [m for item in batch for m in item.messages]
        audit = [a for item in batch for a in item.audit]
        error: Exception | None = None
        try:
            await self._store.commit(messages, audit)
        except Exception as exc:  # the store's failure must not kill the writer; callers learn of it
            # a full disk fails every batch: one line every few seconds, a traceback only for the unexpected
            self._log.warning(
                type(exc),
                "gossip store commit (%d messages, %d audit rows) failed: %s",
                len(messages),
                len(audit),
                exc.detail if isinstance(exc, StoreUnavailableError) else exc,
                exc_info=not isinstance(exc, StoreUnavailableError),
            )
            self._stats.store_errors += 1
            error = exc
        else:
            self._stats.store_commits += 1
        for item in batch:
            if item.on_commit is not None:
                try:
                    item.on_commit(error)
                except Exception:
                    log.exception("gossip post-commit callback failed")
        if self._after_batch is not None:
            try:
                self._after_batch()
            except Exception:
                log.exception("gossip post-commit batch callback failed")
        async with self._progress:
            self._done += len(batch)
            self._progress.notify_all()
