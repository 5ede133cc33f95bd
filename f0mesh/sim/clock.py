"""A virtual-time asyncio event loop: simulated seconds pass as fast as the CPU can run callbacks.

The loop's ``time()`` is a counter: when no callback is ready it moves straight to the earliest
timer. So ``asyncio.sleep``, ``wait_for``, ``timeout`` and ``call_later`` inside unchanged code (the
gossip engine's ack timeouts, batch lingers, heartbeats) all run on simulated time, in the same
order they would in real time, with no real waiting.

Timers are kept as ``(when, sequence, handle)`` tuples rather than asyncio's heap of TimerHandles:
a 10,000-peer run holds tens of thousands of timers, and ordering them by TimerHandle.__lt__ (a
Python call per comparison) was the largest single cost of the loop. Timers due at the same instant
run in the order they were set (asyncio leaves that order unspecified; here it is reproducible).

Nothing outside the loop (threads, sockets, subprocesses) is polled: a simulation must be closed,
everything it waits for being a timer or a callback of another task.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import selectors
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

_PURGE_MIN = 512  # below this many cancelled timers, they are dropped when they reach the head


class SimulationStalled(RuntimeError):
    """Nothing is ready and no timer is set, yet the main task waits: in virtual time, a deadlock."""


class VirtualClockLoop(asyncio.SelectorEventLoop):
    """An event loop on virtual time starting at ``start`` seconds."""

    def __init__(self, start: float = 0.0) -> None:
        self._now = float(start)
        self._timeline: list[tuple[float, int, asyncio.TimerHandle]] = []
        self._order = itertools.count()
        super().__init__(selectors.SelectSelector())

    def time(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        """Jump forward (e.g. between test steps); timers now due fire on the next iteration."""
        if seconds < 0:
            raise ValueError("virtual time never goes back")
        self._now += seconds

    def call_at(
        self, when: float, callback: Callable[..., object], *args: Any, context: Any = None
    ) -> asyncio.TimerHandle:
        self._check_closed()  # type: ignore[attr-defined]
        timer = asyncio.TimerHandle(when, callback, args, self, context)
        heapq.heappush(self._timeline, (when, next(self._order), timer))
        timer._scheduled = True  # type: ignore[attr-defined]
        return timer

    def _run_once(self) -> None:
        """One iteration: jump to the next timer if nothing is ready, queue what is due, run it."""
        timeline, ready = self._timeline, self._ready  # type: ignore[attr-defined]
        cancelled = self._timer_cancelled_count  # type: ignore[attr-defined]
        if cancelled > _PURGE_MIN and 2 * cancelled > len(timeline):
            kept = []
            for entry in timeline:
                if entry[2]._cancelled:  # type: ignore[attr-defined]
                    entry[2]._scheduled = False  # type: ignore[attr-defined]
                else:
                    kept.append(entry)
            heapq.heapify(kept)
            self._timeline = timeline = kept
            self._timer_cancelled_count = 0
        if not ready and not self._stopping:  # type: ignore[attr-defined]
            while timeline and timeline[0][2]._cancelled:  # type: ignore[attr-defined]
                heapq.heappop(timeline)[2]._scheduled = False  # type: ignore[attr-defined]
                self._timer_cancelled_count -= 1
            if not timeline:
                raise SimulationStalled("the simulation waits on what no timer or callback will ever set")
            if timeline[0][0] > self._now:
                self._now = timeline[0][0]
        end = self._now + self._clock_resolution  # type: ignore[attr-defined]
        while timeline and timeline[0][0] < end:
            timer = heapq.heappop(timeline)[2]
            timer._scheduled = False  # type: ignore[attr-defined]
            if timer._cancelled:  # type: ignore[attr-defined]
                self._timer_cancelled_count -= 1
            else:
                ready.append(timer)
        for _ in range(len(ready)):
            handle = ready.popleft()
            if not handle._cancelled:
                handle._run()

    def close(self) -> None:
        for entry in self._timeline:
            entry[2]._scheduled = False  # type: ignore[attr-defined]
        self._timeline.clear()
        super().close()


def run_virtual(main: Coroutine[Any, Any, T], start: float = 0.0) -> T:
    """Run a coroutine to completion on a fresh VirtualClockLoop (like asyncio.run)."""
    with asyncio.Runner(loop_factory=lambda: VirtualClockLoop(start)) as runner:
        return runner.run(main)
