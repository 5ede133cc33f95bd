"""Why a link closed or failed, as a type rather than a string to match by prefix.

The enum is append-only (a value never changes meaning): the registry and the connection manager
decide on the member, while the text shown in the HTTP API, the audit rows and the logs is built from
the member's value and a detail, exactly as it was written before the enum existed.
"""

from __future__ import annotations

from enum import StrEnum


class CloseReason(StrEnum):
    OPERATOR = "closed by operator"
    BLOCKED = "blocked by operator"
    PRUNED = "pruned: above D_hi"
    REPLACED = "replaced by a newer link"
    GLARE_LOST = "glare: the peer's offer wins"
    STOPPING = "node stopping"
    CLOSED_BY_PEER = "closed by peer"  # the peer's operator closed it: do not redial
    PEER_LEFT = "peer left"  # the peer closed without asking us to stay away
    CTL_CLOSED = "control channel closed"
    PC_FAILED = "peer connection failed"
    PC_CLOSED = "peer connection closed"
    CONNECT_TIMEOUT = "not open within"
    HEARTBEAT = "no frame from the peer"
    WIRE_VERSION = "incompatible wire version"
    UNEXPECTED_PEER = "hello from an unexpected PeerId"
    SETUP_FAILED = "setup failed"  # the offer/answer exchange raised; the detail says why
    OFFENDER = "gossip score below graylist"  # held off for a backoff, then accepted again

    def text(self, detail: str | None = None) -> str:
        """The words shown for this reason; ``detail`` is the variable part (the peer's words, a time)."""
        if detail is None:
            return self.value
        return _FORMATS.get(self, "{value}: {detail}").format(value=self.value, detail=detail)


_FORMATS = {
    CloseReason.OPERATOR: "{detail}",  # an operator's (or a test's) own words replace the default
    CloseReason.CONNECT_TIMEOUT: "{value} {detail}",
    CloseReason.HEARTBEAT: "{value} for {detail} (heartbeat)",
    CloseReason.WIRE_VERSION: "{value} {detail}",
    CloseReason.SETUP_FAILED: "{detail}",
}
