"""TaskSet: failures are logged, the set is bounded in time when it closes."""

from __future__ import annotations

import asyncio
import logging

import pytest

from f0mesh.errors import StoreUnavailableError
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


async def _fail(error: Exception) -> None:
    raise error


async def test_a_known_error_is_one_line_and_a_bug_keeps_its_traceback(caplog) -> None:
    """An F0MeshError (a store down, a peer gone) is an operating condition said in its own words; anything
    else keeps its traceback, since that one is a bug."""
    tasks = TaskSet("part")
    with caplog.at_level(logging.WARNING, logger="f0mesh.tasks"):
        down = tasks.spawn(_fail(StoreUnavailableError("the store did not answer in 30 s")), name="catch-up")
        bug = tasks.spawn(_fail(KeyError("x")), name="bug")
        await asyncio.gather(down, bug, return_exceptions=True)
        await asyncio.sleep(0)  # the done callbacks
    lines = {r.getMessage(): bool(r.exc_info) for r in caplog.records if r.name == "f0mesh.tasks"}
    assert lines == {
        "part: background task catch-up failed: the store did not answer in 30 s": False,
        "part: background task bug failed: KeyError('x')": True,
    }
    assert len(tasks) == 0
