"""Why an inbound envelope was refused: one stable reason string per audit row and metric label."""

from __future__ import annotations

from enum import StrEnum

from f0mesh.errors import F0MeshError


class Reason(StrEnum):
    """Rejection reasons; the values are what audit rows and /metrics labels carry."""

    MALFORMED = "malformed"
    TOO_LARGE = "too_large"
    BAD_SIGNATURE = "bad_signature"
    REPLAY = "replay"
    CLOCK_SKEW = "clock_skew"
    RATE_LIMITED = "rate_limited"
    INVALID = "invalid"  # a topic validator rejected it
    NOT_PUBLISHER = "not_publisher"  # the topic's publish policy does not name the origin


_STATUS = {
    Reason.TOO_LARGE: 413,
    Reason.RATE_LIMITED: 429,
    Reason.BAD_SIGNATURE: 403,
    Reason.NOT_PUBLISHER: 403,
}


class GossipReject(F0MeshError):
    """An envelope or control message refused by the validation pipeline.

    Subclasses F0MeshError so a refused local publish (e.g. too large) maps to an HTTP status.
    """

    def __init__(self, reason: Reason, detail: str = "", *, penalise: bool = True) -> None:
        super().__init__(detail or reason.value, code=reason.value, status=_STATUS.get(reason, 400))
        self.reason = reason
        self.penalise = penalise  # whether the neighbour that sent it pays in behaviour score
