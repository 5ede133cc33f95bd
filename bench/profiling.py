"""A sampling profile (pyinstrument) reduced to the few costs a reader needs: where CPU went, and
which f0mesh function led there, so that "msgpack" or "sqlite3" names the f0mesh step that paid it.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from pyinstrument import Profiler
from pyinstrument.frame import Frame

INTERVAL_S = 0.001
# The event loop waiting in epoll is idle time, not a cost.
_IDLE = frozenset({"select", "poll", "epoll.poll"})


def _location(frame: Frame) -> str:
    path = (frame.file_path or "").replace("\\", "/")
    for marker in ("/site-packages/", "/lib/python3."):
        if marker in path:
            path = path.split(marker, 1)[1]
            if marker == "/lib/python3.":
                path = "stdlib/" + path.split("/", 1)[-1]
            break
    else:
        for marker in ("/f0mesh/", "/bench/"):
            if marker in path:
                path = marker.strip("/") + "/" + path.rsplit(marker, 1)[1]
                break
    return f"{path}:{frame.function}"


def _is_ours(frame: Frame) -> bool:
    path = frame.file_path or ""
    return ("/f0mesh/" in path or "/bench/" in path) and "/site-packages/" not in path


def top_costs(root: Frame | None, top: int) -> dict[str, Any]:
    """The ``top`` functions by self time (idle excluded), each with the innermost f0mesh function
    on the stack above it (``via``) and its share of the busy samples."""
    if root is None:
        return {"busy_s": 0.0, "idle_s": 0.0, "costs": []}
    costs: dict[tuple[str, str], float] = defaultdict(float)
    idle = 0.0
    stack: list[tuple[Frame, str]] = [(root, "")]
    while stack:
        frame, via = stack.pop()
        if frame.is_synthetic:
            continue
        own = frame.time - sum(child.time for child in frame.children if not child.is_synthetic)
        if frame.function in _IDLE:
            idle += own
        elif own > 0:
            costs[(_location(frame), via)] += own
        here = _location(frame) if _is_ours(frame) else via
        stack.extend((child, here) for child in frame.children)
    busy = sum(costs.values())
    ranked = sorted(costs.items(), key=lambda item: item[1], reverse=True)[:top]
    return {
        "busy_s": round(busy, 3),
        "idle_s": round(idle, 3),
        "costs": [
            {"function": name, "via": via or "-", "self_s": round(t, 3), "share": round(t / busy, 4)}
            for (name, via), t in ranked
        ],
    }


class Sampler:
    """Profiles the whole thread (every task of the event loop), started and stopped on request."""

    def __init__(self) -> None:
        self._profiler: Profiler | None = None

    def start(self) -> None:
        if self._profiler is not None:
            self._profiler.stop()
        self._profiler = Profiler(interval=INTERVAL_S, async_mode="disabled")
        self._profiler.start()

    def stop(self, top: int) -> dict[str, Any]:
        if self._profiler is None:
            raise RuntimeError("the profiler was not started")
        session = self._profiler.stop()
        self._profiler = None
        return top_costs(session.root_frame(), top)
