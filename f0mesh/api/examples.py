"""OpenAPI examples, written once in the shapes FastAPI takes: a JSON answer and named request bodies.

Every route added for applications (issue 22) carries an example of its answer, and of its body when
it takes one, so /docs shows a client what to send and what comes back without reading the code.
"""

from __future__ import annotations

from typing import Any

PEER = "12D3KooWRs8yqTQLJ1nVbZDsGegbfWvqq8rA3V9i86ZEVGnNZ9Ta"
OTHER_PEER = "12D3KooWC8ZXNFoSAkXS3U5W215syJM7mSDwDxLTWsfsr8Ep1a4V"


def answer(example: Any, description: str = "Successful Response") -> dict[int | str, dict[str, Any]]:
    """``responses=`` with an example of the JSON answer."""
    return {200: {"description": description, "content": {"application/json": {"example": example}}}}


def bodies(**examples: Any) -> dict[str, Any]:
    """``openapi_extra=`` naming example request bodies."""
    named = {name: {"value": value} for name, value in examples.items()}
    return {"requestBody": {"content": {"application/json": {"examples": named}}}}


SUBSCRIPTIONS = {
    "topics": ["news"],
    "system": ["state", "state/signed", "telemetry", "trust"],
    "neighbours": {PEER: ["news", "state/signed", "telemetry", "trust"], OTHER_PEER: None},
}
POLICY = {
    "creator": OTHER_PEER,
    "created": [1765000000000, 0],
    "writers": sorted([OTHER_PEER, PEER]),
    "resolution": "ranked",
    "rank": [OTHER_PEER, PEER],
}
DOCUMENT = {
    "name": "config",
    "kind": "map",
    "value": {"mode": "fast"},
    "version": {OTHER_PEER: 3, PEER: 2},
    "open": ["mode"],
    "policy": POLICY,
}
KEPT_TS = "001765000000123-0000000000-" + OTHER_PEER
LOST_TS = "001765000000125-0000000000-" + PEER
OPEN_CONFLICT = {
    "key": "mode",
    "open": True,
    "siblings": [
        {"value": "fast", "deleted": False, "ts": KEPT_TS, "origin": OTHER_PEER},
        {"value": "safe", "deleted": False, "ts": LOST_TS, "origin": PEER},
    ],
    "kept": "fast",
    "kept_ts": KEPT_TS,
    "kept_deleted": False,
    "kept_origin": OTHER_PEER,
    "discarded": "safe",
    "discarded_ts": LOST_TS,
    "discarded_deleted": False,
    "discarded_origin": PEER,
    "resolution": "ranked writer wins: the value of the writer ranked highest in the signed policy is shown",
}
