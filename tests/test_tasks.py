"""TaskSet: failures are logged, the set is bounded in time when it closes."""

from __future__ import annotations

import asyncio
import logging

import pytest

from f0mesh.tasks import TaskSet


async def test_failure_is_logged_with_the_set_name(caplog: pytest.LogCaptureFixture) -> None:
    tasks = TaskSet("unit")

    async def boom() -> None:
        raise RuntimeError("kaput")

    with caplog.at_level(logging.WARNING, logger="f0mesh.tasks"):
        task = tasks.spawn(boom(), name="boom")
        assert task is not None
        await asyncio.wait({task}, timeout=2)
        await asyncio.sleep(0)
    assert any("unit" in r.getMessage() and "kaput" in r.getMessage() for r in caplog.records)
    assert len(tasks) == 0


async def test_close_cancels_what_does_not_finish_and_refuses_new_work() -> None:
    tasks = TaskSet("unit")
    finished: list[str] = []

    async def quick() -> None:
        finished.append("quick")

    async def forever() -> None:
        await asyncio.Event().wait()

    tasks.spawn(quick())
    slow = tasks.spawn(forever())
    await tasks.close(timeout=0.2)
    assert finished == ["quick"]
    assert slow is not None and slow.cancelled()
    late = forever()
    assert tasks.spawn(late) is None
    assert late.cr_frame is None  # closed, not left to warn "never awaited"


async def test_close_without_grace_cancels_at_once() -> None:
    tasks = TaskSet("unit")
    finished: list[str] = []

    async def soon() -> None:
        for _ in range(3):
            await asyncio.sleep(0)
        finished.append("soon")

    task = tasks.spawn(soon())
    await tasks.close(timeout=2, grace=0)
    assert task is not None and task.cancelled()
    assert finished == []


async def test_cancel_from_inside_a_task_spares_the_caller() -> None:
    tasks = TaskSet("unit")
    other = tasks.spawn(asyncio.Event().wait())

    async def closer() -> str:
        await asyncio.sleep(0)
        tasks.cancel()
        await asyncio.sleep(0)
        return "done"

    mine = tasks.spawn(closer())
    assert mine is not None and other is not None
    assert await asyncio.wait_for(mine, 2) == "done"
    await asyncio.wait({other}, timeout=2)
    assert other.cancelled()
    late = closer()
    assert tasks.spawn(late) is None
