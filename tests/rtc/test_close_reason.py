"""Typed close reasons show exactly the words the API, audit rows and logs showed before the enum."""

from __future__ import annotations

import pytest

from f0mesh.rtc.close_reason import CloseReason

SHOWN = [
    (CloseReason.OPERATOR, None, "closed by operator"),
    (CloseReason.OPERATOR, "churn", "churn"),
    (CloseReason.BLOCKED, None, "blocked by operator"),
    (CloseReason.PRUNED, None, "pruned: above D_hi"),
    (CloseReason.REPLACED, None, "replaced by a newer link"),
    (CloseReason.GLARE_LOST, None, "glare: the peer's offer wins"),
    (CloseReason.STOPPING, None, "node stopping"),
    (CloseReason.CLOSED_BY_PEER, "churn", "closed by peer: churn"),
    (CloseReason.PEER_LEFT, "node stopping", "peer left: node stopping"),
    (CloseReason.CTL_CLOSED, None, "control channel closed"),
    (CloseReason.PC_FAILED, None, "peer connection failed"),
    (CloseReason.PC_CLOSED, None, "peer connection closed"),
    (CloseReason.CONNECT_TIMEOUT, "15 s", "not open within 15 s"),
    (CloseReason.HEARTBEAT, "4.0 s", "no frame from the peer for 4.0 s (heartbeat)"),
    (CloseReason.WIRE_VERSION, "[9, 0]", "incompatible wire version [9, 0]"),
    (CloseReason.UNEXPECTED_PEER, None, "hello from an unexpected PeerId"),
    (CloseReason.SETUP_FAILED, "TimeoutError: ", "TimeoutError: "),
    (CloseReason.OFFENDER, "-90.0", "gossip score below graylist: -90.0"),
]


@pytest.mark.parametrize(("cause", "detail", "shown"), SHOWN)
def test_the_words_shown_are_unchanged(cause: CloseReason, detail: str | None, shown: str) -> None:
    assert cause.text(detail) == shown


def test_a_value_names_its_reason() -> None:
    assert CloseReason("blocked by operator") is CloseReason.BLOCKED
    assert {cause for cause, _, _ in SHOWN} == set(CloseReason), "every reason's words are pinned here"
