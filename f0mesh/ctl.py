"""The ctl channel's message kinds and the one router that hands each kind to its handler.

Every ctl message is a msgpack map ``{"t": kind, ...}``. Kinds are an append-only enum, as
memberlist's message types: a value once shipped is never reused or renamed, so nodes of different
versions agree on what a kind means. A part of the node (gossip, peer exchange, state sync,
signaling) registers its handler; a benchmark or an application registers its own kinds the same way
instead of reaching into the node. A kind nobody registered is dropped and logged once per peer.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from .log_throttle import LogThrottle

log = logging.getLogger(__name__)

Handler = Callable[[str, dict[str, Any]], Awaitable[None] | None]
"""``handler(peer_id, message)``: the message is hostile input; the handler validates it."""

MAX_KIND_LENGTH = 32


class CtlKind(enum.StrEnum):
    """Append-only: add new kinds at the end, never change a value."""

    HELLO = "hello"
    HEARTBEAT = "hb"
    BYE = "bye"
    GOSSIP = "gossip"
    PEX = "pex"
    STATE = "state"
    SIG = "sig"
    DIRECT = "direct"


class CtlRouter:
    """Maps a ctl kind to its handler; a link's own kinds (hello, hb, bye) never reach it."""

    def __init__(self) -> None:
        self._handlers: dict[str, Handler] = {}
        self._log = LogThrottle(log)

    def register(self, kind: str, handler: Handler) -> None:
        if not kind or len(kind) > MAX_KIND_LENGTH:
            raise ValueError(f"ctl kind must be 1..{MAX_KIND_LENGTH} characters: {kind!r}")
        if kind in self._handlers:
            raise ValueError(f"ctl kind {kind!r} already has a handler")
        self._handlers[kind] = handler

    def unregister(self, kind: str) -> None:
        self._handlers.pop(kind, None)

    def kinds(self) -> list[str]:
        return sorted(self._handlers)

    async def dispatch(self, peer_id: str, message: dict[str, Any]) -> bool:
        """Run the kind's handler; False (and one log line per peer) when no handler has the kind."""
        kind = message.get("t")
        handler = self._handlers.get(kind) if isinstance(kind, str) else None
        if handler is None:
            self._log.info(
                (peer_id, "unknown"),
                "dropped an unknown ctl message %r from %s",
                str(kind)[:MAX_KIND_LENGTH],
                peer_id,
            )
            return False
        result = handler(peer_id, message)
        if result is not None:
            await result
        return True
