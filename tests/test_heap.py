"""heap.trim gives freed heap pages back: the node calls it after each burst of link changes."""

from __future__ import annotations

import platform

import pytest

from f0mesh import heap


def _rss_kb() -> int:
    with open("/proc/self/status") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith("VmRSS:"))


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="malloc_trim is glibc's")
def test_trim_returns_freed_pages_that_free_kept() -> None:
    burst = [bytearray(1000) for _ in range(60_000)]  # ~60 MB of small blocks, as a burst leaves
    pin = bytearray(1000)  # allocated last: the heap's top stays in use, so free() cannot shrink it
    peak = _rss_kb()
    del burst
    kept = _rss_kb()
    assert heap.trim() is True
    after = _rss_kb()
    assert kept - after > 20_000, (peak, kept, after)
    del pin


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")
def test_arena_cap_is_taken_by_glibc() -> None:
    assert heap.limit_arenas(heap.ARENA_MAX) is True


def test_arena_cap_without_glibc_is_a_no_op(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(heap, "_libc", lambda: None)
    assert heap.limit_arenas() is False
