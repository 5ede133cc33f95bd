"""LatestWriter: one task writes the latest row per key, in order, within a bound."""

from __future__ import annotations

import asyncio

from f0mesh.latest_writer import LatestWriter


async def test_a_slow_write_is_never_overtaken_and_only_the_latest_row_waits() -> None:
    written: list[tuple[str, str]] = []
    gate = asyncio.Event()

    async def write(row: tuple[str, str]) -> None:
        if row[1] == "open":
            await gate.wait()  # a slow commit
        written.append(row)

    writer: LatestWriter[str, tuple[str, str]] = LatestWriter(write, what="test")
    writer.put("a", ("a", "connecting"))
    await asyncio.sleep(0)
    writer.put("a", ("a", "open"))
    await asyncio.sleep(0)  # the "open" write has started and waits
    writer.put("a", ("a", "closing"))
    writer.put("b", ("b", "connecting"))
    writer.put("a", ("a", "closed"))  # replaces "closing", which never reaches the store
    assert writer.pending == 2
    gate.set()
    await writer.close(timeout=5)
    assert written == [("a", "connecting"), ("a", "open"), ("a", "closed"), ("b", "connecting")]


async def test_bounded_a_failed_write_does_not_stop_the_rest_and_nothing_is_taken_after_close() -> None:
    written: list[int] = []
    gate = asyncio.Event()

    async def write(row: int) -> None:
        await gate.wait()
        if row == 3:
            raise OSError("database is locked")
        written.append(row)

    writer: LatestWriter[int, int] = LatestWriter(write, what="test", max_pending=2)
    for key in range(5):  # 0 is being written; 1 and 2 are dropped to make room for 3 and 4
        writer.put(key, key)
        await asyncio.sleep(0)
    assert writer.pending == 2 and writer.dropped == 2
    gate.set()
    await writer.close(timeout=5)
    writer.put(9, 9)
    await asyncio.sleep(0.01)
    assert written == [0, 4]


async def test_close_gives_up_on_a_store_that_never_answers() -> None:
    async def write(row: int) -> None:
        await asyncio.Event().wait()

    writer: LatestWriter[int, int] = LatestWriter(write, what="test")
    writer.put(1, 1)
    await asyncio.sleep(0)
    await writer.close(timeout=0.05)
    assert writer.pending == 0
