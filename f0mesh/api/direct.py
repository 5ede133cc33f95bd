"""Direct messages to one peer and queries to the peers matching a filter (admin token).

Incoming direct messages are events of topic ``direct`` on /api/events (they are never stored).
"""

from __future__ import annotations

import base64
from typing import Any

from fastapi import APIRouter, Depends
from pydantic import Field, PrivateAttr, model_validator

from f0mesh.api.auth import require_admin
from f0mesh.api.examples import PEER
from f0mesh.api.models import PEER_ID_PATTERN, Strict, decode_b64
from f0mesh.api.worker import get_node
from f0mesh.direct import MAX_BODY
from f0mesh.node import Node
from f0mesh.peer_record import MAX_TAG_KEY, MAX_TAG_VALUE, MAX_TAGS
from f0mesh.query import MAX_NAME, MAX_TARGETS, MAX_TIMEOUT_S

router = APIRouter(tags=["direct"])
MAX_B64 = (MAX_BODY + 2) // 3 * 4


class _Payload(Strict):
    payload: Any = Field(None, description="any JSON value (give this or payload_b64)")
    payload_b64: str | None = Field(None, max_length=MAX_B64, description="bytes, base64")
    _bytes: bytes = PrivateAttr(b"")

    @model_validator(mode="after")
    def one_payload(self) -> _Payload:
        if "payload" in self.model_fields_set and "payload_b64" in self.model_fields_set:
            raise ValueError("give at most one of 'payload' or 'payload_b64'")
        if self.payload_b64 is not None:
            self._bytes = decode_b64(self.payload_b64)
        return self

    def value(self) -> Any:
        return self.payload if self.payload_b64 is None else self._bytes


class DirectRequest(_Payload):
    peer_id: str = Field(pattern=PEER_ID_PATTERN, description="the addressee")


class QueryFilter(Strict):
    peers: list[str] | None = Field(None, max_length=MAX_TARGETS, description="only these PeerIds")
    tags: dict[str, str] | None = Field(
        None,
        max_length=MAX_TAGS,
        description=f"every tag must match (keys ≤ {MAX_TAG_KEY}, values ≤ {MAX_TAG_VALUE} characters)",
    )

    @model_validator(mode="after")
    def bounded(self) -> QueryFilter:
        for peer in self.peers or []:
            if not 40 <= len(peer) <= 60:
                raise ValueError("peers must be PeerIds")
        for key, value in (self.tags or {}).items():
            if len(key) > MAX_TAG_KEY or len(value) > MAX_TAG_VALUE:
                raise ValueError("a tag filter key or value is too long")
        return self


class QueryRequest(_Payload):
    name: str = Field(min_length=1, max_length=MAX_NAME, description="the handler's name, e.g. f0mesh.ping")
    filter: QueryFilter = Field(default_factory=QueryFilter)
    timeout: float = Field(5.0, gt=0, le=MAX_TIMEOUT_S, description="seconds to gather answers")


@router.post(
    "/api/direct",
    summary="Send a direct message to one peer, end to end encrypted (admin)",
    dependencies=[Depends(require_admin)],
    description=(
        "Send one message to one peer: over the link to it, or flooded through the mesh, signed by this "
        "node and encrypted to the peer's X25519 key from its signed record (relays see the addressee "
        f"only). The body is at most {MAX_BODY} bytes. 404 `unknown_peer` when no record of the peer "
        "with a key is known here; 503 `no_route` without links. The addressee sees it as an event of "
        "topic `direct` on /api/events; nobody stores it."
    ),
    openapi_extra={
        "requestBody": {
            "content": {
                "application/json": {
                    "examples": {
                        "json": {"value": {"peer_id": PEER, "payload": {"hello": "you"}}},
                        "bytes": {"value": {"peer_id": PEER, "payload_b64": "AAEC"}},
                    }
                }
            }
        }
    },
    responses={
        200: {"content": {"application/json": {"example": {"id": "5f0c0e3a9d1b4c2e8f7a6b5c4d3e2f10"}}}}
    },
)
async def send_direct(body: DirectRequest, node: Node = Depends(get_node)) -> dict[str, Any]:
    return {"id": await node.messaging.send(body.peer_id, body.value())}


@router.post(
    "/api/query",
    summary="Ask the peers matching a filter and gather their answers until a deadline (admin)",
    dependencies=[Depends(require_admin)],
    description=(
        "Ask the peers matching `filter` (PeerIds, tags; none: every peer known with a key, and this "
        "node) and gather their answers until `timeout`, like `serf query`. Answers the targets, "
        "each peer's answer or error, who acked, and who did not answer in time. Every node answers "
        "`f0mesh.ping` with its PeerId and tags; others are registered in Python with "
        "`node.queries.handler(name, fn)`."
    ),
    openapi_extra={
        "requestBody": {
            "content": {
                "application/json": {
                    "examples": {
                        "ping": {
                            "value": {"name": "f0mesh.ping", "filter": {"tags": {"role": "db"}}, "timeout": 2}
                        }
                    }
                }
            }
        }
    },
    responses={
        200: {
            "content": {
                "application/json": {
                    "example": {
                        "targets": [PEER],
                        "answers": [{"peer_id": PEER, "answer": {"peer_id": PEER}}],
                        "errors": [],
                        "acks": [PEER],
                        "no_answer": [],
                        "no_ack": [],
                    }
                }
            }
        }
    },
)
async def query(body: QueryRequest, node: Node = Depends(get_node)) -> dict[str, Any]:
    result = await node.query(
        body.name, body.value(), peers=body.filter.peers, tags=body.filter.tags, timeout=body.timeout
    )
    for answer in result["answers"]:
        if isinstance(answer["answer"], bytes):
            answer["answer_b64"] = base64.b64encode(answer.pop("answer")).decode("ascii")
    return result
