"""Giving freed heap back to the operating system after a burst of work.

Every new or closed link sets off a burst (signed signaling, DTLS, hello, peer exchange, catch-up
gossip, telemetry, store writes). Python frees what the burst allocated, but glibc keeps the freed
pages in its arenas, so the process's RSS stays at the burst's high-water mark: measured for issues
#12 and #25, that was most of what a link seemed to cost beyond plain aiortc. ``malloc_trim(0)``
hands the free pages back; elsewhere than glibc there is nothing to do.

The node's threads (the store's connections, the default executor) each get a glibc arena of their
own, whose freed pages a trim of the main arena does not reach; two arenas for the whole process
cut what a link seems to cost by ~60 kB (issue #25, link_memory with K = 4: 342 -> 279 and
364 -> 302 kB per link).
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import functools
import logging
from collections.abc import Callable

from f0mesh.tasks import TaskSet

log = logging.getLogger(__name__)


ARENA_MAX = 2
_M_ARENA_MAX = -8  # glibc's mallopt parameter number (malloc.h)


@functools.cache
def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        return ctypes.CDLL(name)
    except OSError:
        return None


def limit_arenas(count: int = ARENA_MAX) -> bool:
    """Cap glibc's malloc arenas (as MALLOC_ARENA_MAX would); True if the allocator took it.

    Arenas already made stay; call before the process starts its threads."""
    mallopt = getattr(_libc(), "mallopt", None)
    if mallopt is None:  # not glibc
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(_M_ARENA_MAX, count))


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    trim = getattr(_libc(), "malloc_trim", None)
    if trim is None:  # not glibc (musl, macOS): no such call
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


def trim() -> bool:
    """Return free heap pages to the OS; True if the allocator gave any back."""
    malloc_trim = _malloc_trim()
    if malloc_trim is None:
        return False
    return bool(malloc_trim(0))


class TrimAfterBurst:
    """Trims ``delay`` seconds after the last of a burst of pokes (link changes): once per burst,
    in a thread (ctypes lets go of the GIL: tens of ms off the loop)."""

    def __init__(self, tasks: TaskSet, delay: float = 1.0) -> None:
        self._tasks = tasks
        self._delay = delay
        self._due: asyncio.TimerHandle | None = None
        self._closed = False

    def poke(self) -> None:
        if self._due is not None:
            self._due.cancel()
        if self._closed:
            return
        self._due = asyncio.get_running_loop().call_later(self._delay, self._trim)

    def _trim(self) -> None:
        self._due = None
        self._tasks.spawn(asyncio.to_thread(trim), name="heap-trim")

    def close(self) -> None:
        self._closed = True
        if self._due is not None:
            self._due.cancel()
            self._due = None
