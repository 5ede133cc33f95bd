import asyncio

from f0mesh.gossip.audit import AuditEvent, AuditRow
from f0mesh.gossip.params import GossipParams
from f0mesh.gossip.stats import GossipStats
from f0mesh.gossip.store import MemoryGossipStore
from f0mesh.gossip.writer import WriteBehind


def row(n: int) -> AuditRow:
    return AuditRow(float(n), AuditEvent.REJECTED, None, f"peer{n}", "malformed")


class FailingStore(MemoryGossipStore):
    async def commit(self, messages, audit):
        raise RuntimeError("disk full")


async def test_rows_are_batched_and_callbacks_run_after_their_commit():
    store = MemoryGossipStore()
    writer = WriteBehind(store, GossipParams(write_batch_rows=50, write_flush_interval_s=0.01), GossipStats())
    writer.start()
    seen: list[tuple[int, int, Exception | None]] = []
    for n in range(120):
        writer.submit(audit=[row(n)], on_commit=lambda error, n=n: seen.append((n, len(store.audit), error)))
    await asyncio.wait_for(writer.flush(), 5)
    assert [r.at for r in store.audit] == [float(n) for n in range(120)]
    assert store.commits <= 4  # 120 rows in batches of up to 50, not 120 transactions
    assert all(committed > n and error is None for n, committed, error in seen)
    await writer.stop()


async def test_a_failed_commit_reports_the_error_and_the_writer_survives():
    stats = GossipStats()
    writer = WriteBehind(FailingStore(), GossipParams(write_flush_interval_s=0), stats)
    writer.start()
    errors: list[Exception | None] = []
    writer.submit(audit=[row(1)], on_commit=errors.append)
    await asyncio.wait_for(writer.flush(), 5)
    writer.submit(audit=[row(2)], on_commit=errors.append)
    await asyncio.wait_for(writer.flush(), 5)
    assert [type(e) for e in errors] == [RuntimeError, RuntimeError]
    assert stats.store_errors == 2
    await writer.stop()


async def test_droppable_rows_are_shed_past_the_queue_limit_but_others_are_kept():
    store = MemoryGossipStore()
    stats = GossipStats()
    writer = WriteBehind(store, GossipParams(write_queue_max_rows=10), stats)
    for n in range(15):
        writer.submit(audit=[row(n)], droppable=True)
    for n in range(15, 20):
        writer.submit(audit=[row(n)])  # not droppable: kept whatever the queue length
    writer.start()
    await asyncio.wait_for(writer.flush(), 5)
    assert len(store.audit) == 15 and stats.audit_rows_dropped == 5
    assert [r.at for r in store.audit][-5:] == [15.0, 16.0, 17.0, 18.0, 19.0]
    await writer.stop()
