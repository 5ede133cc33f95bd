"""A store that refuses the QoS samples (a full disk) is an operating condition: a warning in the
store's words, throttled, never a traceback per sampling window; anything else still logs its traceback."""

from __future__ import annotations

import asyncio
import logging

import pytest

from f0mesh.errors import StorageFullError
from f0mesh.qos.sampler import QoSSampler


async def _windows(error: Exception, caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    refused: list[int] = []
    five = asyncio.Event()

    async def store(samples: list) -> None:
        refused.append(len(samples))
        if len(refused) == 5:
            five.set()
        raise error

    sampler = QoSSampler(interval=0.01, probe_rate=1.0, on_sample=store)
    sampler.sample_now = lambda: ["a sample"]  # type: ignore[method-assign]  # no link needed to sample
    with caplog.at_level(logging.WARNING, logger="f0mesh.qos.sampler"):
        task = asyncio.ensure_future(sampler._sample_loop())
        try:
            await asyncio.wait_for(five.wait(), 10)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    return [r for r in caplog.records if r.name == "f0mesh.qos.sampler"]


async def test_a_full_disk_is_one_warning_without_a_traceback(caplog) -> None:
    records = await _windows(StorageFullError("not stored: the store's disk is full"), caplog)
    assert len(records) == 1, [r.getMessage() for r in records]  # five windows, one line
    assert records[0].levelno == logging.WARNING and not records[0].exc_info
    assert "1 QoS samples not stored: not stored: the store's disk is full" in records[0].getMessage()


async def test_an_unexpected_error_keeps_its_traceback(caplog) -> None:
    records = await _windows(RuntimeError("a bug"), caplog)
    assert records and all(r.levelno == logging.ERROR and r.exc_info for r in records)
