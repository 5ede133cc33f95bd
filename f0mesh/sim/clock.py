"""A virtual-time asyncio event loop: simulated seconds pass as fast as the CPU can run callbacks.

The loop's ``time()`` is a counter, and its selector never waits: when no callback is ready it
moves the counter straight to the earliest timer. So ``asyncio.sleep``, ``wait_for``, ``timeout``
and ``call_later`` inside unchanged code (the gossip engine's ack timeouts, batch lingers, repair
rounds) all run on simulated time, in the same order they would in real time, with no real waiting.

Nothing outside the loop (threads, sockets, subprocesses) is polled: a simulation must be closed,
everything it waits for being a timer or a callback of another task.
"""

from __future__ import annotations

import asyncio
import selectors
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


class SimulationStalled(RuntimeError):
    """Nothing is ready and no timer is set, yet the main task waits: in virtual time, a deadlock."""


class _VirtualSelector(selectors.SelectSelector):
    """Keeps the loop's registrations (its self-pipe) but never polls them; select() moves the clock."""

    def __init__(self, loop: VirtualClockLoop) -> None:
        super().__init__()
        self._loop = loop

    def select(self, timeout: float | None = None) -> list[Any]:
        if timeout is None:
            raise SimulationStalled("the simulation waits on something no timer or callback will ever set")
        if timeout > 0:
            self._loop._now += timeout
        return []


class VirtualClockLoop(asyncio.SelectorEventLoop):
    """An event loop on virtual time starting at ``start`` seconds."""

    def __init__(self, start: float = 0.0) -> None:
        self._now = float(start)
        super().__init__(_VirtualSelector(self))

    def time(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        """Jump forward (e.g. between test steps); timers now due fire on the next iteration."""
        if seconds < 0:
            raise ValueError("virtual time never goes back")
        self._now += seconds


def run_virtual(main: Coroutine[Any, Any, T], start: float = 0.0) -> T:
    """Run a coroutine to completion on a fresh VirtualClockLoop (like asyncio.run)."""
    with asyncio.Runner(loop_factory=lambda: VirtualClockLoop(start)) as runner:
        return runner.run(main)
