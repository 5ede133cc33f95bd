"""Telling a task's own cancellation from a stray ``CancelledError`` raised by code it awaits.

aiortc and aioice cancel their internal tasks while closing and sometimes await them afterwards, so
``await pc.close()`` can raise ``CancelledError`` in a task that nobody asked to cancel. Treated as a
cancellation, such an error silently ends whatever loop awaited it (the connection manager once stopped
pruning for good this way); treated as an error, it is logged and the loop goes on.
"""

from __future__ import annotations

import asyncio


def cancel_requested() -> bool:
    """True when the current task was asked to cancel: a ``CancelledError`` seen now must propagate."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0
