"""The life cycle of a link, apart from the aiortc object: the registry's rules need no WebRTC."""

from __future__ import annotations

from enum import StrEnum


class LinkState(StrEnum):
    CONNECTING = "connecting"
    OPEN = "open"
    FAILED = "failed"
    CLOSED = "closed"

    @property
    def live(self) -> bool:
        return self in (LinkState.CONNECTING, LinkState.OPEN)
