"""Publishing and reading gossip, and the audit log."""

from __future__ import annotations

import base64
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query
from pydantic import Field, PrivateAttr, model_validator

from f0mesh.api.auth import require_admin
from f0mesh.api.examples import OTHER_PEER, PEER, SUBSCRIPTIONS, answer, bodies
from f0mesh.api.models import Strict, decode_b64
from f0mesh.api.worker import get_node
from f0mesh.gossip.params import GossipParams
from f0mesh.node import Node
from f0mesh.state.topic_policy import MAX_PUBLISHERS

router = APIRouter(tags=["gossip"])

AUDIT_EVENTS = ("published", "sent", "received", "forwarded", "duplicate", "rejected")
MAX_MESSAGE_BYTES = GossipParams().max_message_bytes
# base64 of a payload that could still fit in a message; the exact check is on the signed envelope
MAX_B64_CHARS = (MAX_MESSAGE_BYTES + 2) // 3 * 4
TOPIC_PATTERN = r"^[A-Za-z0-9_.:/-]+$"
SUBSCRIPTION_PATTERN = r"^(\*|[A-Za-z0-9_.:/-]+)$"  # a topic, or * for every topic
MAX_N = 2**63 - 1  # a storing order n is a signed 64-bit column
MESSAGE_FIELDS = ("n", "id", "origin", "topic", "hops", "received_at")


class PublishRequest(Strict):
    topic: str = Field(min_length=1, max_length=128, pattern=TOPIC_PATTERN)
    payload: Any = Field(None, description="any JSON value (give this or payload_b64)")
    payload_b64: str | None = Field(
        None, max_length=MAX_B64_CHARS, description="bytes, base64 (standard alphabet, padded)"
    )
    _bytes: bytes = PrivateAttr(b"")

    @model_validator(mode="after")
    def exactly_one(self) -> PublishRequest:
        if ("payload" in self.model_fields_set) == ("payload_b64" in self.model_fields_set):
            raise ValueError("give exactly one of 'payload' or 'payload_b64'")
        if self.payload_b64 is not None:
            self._bytes = decode_b64(self.payload_b64)
        return self

    def value(self) -> Any:
        return self.payload if self.payload_b64 is None else self._bytes


def message_json(row: dict[str, Any]) -> dict[str, Any]:
    """A stored message for JSON clients: a bytes payload shows as ``payload_b64`` instead."""
    out = {k: row[k] for k in MESSAGE_FIELDS}
    payload = row["payload"]
    if isinstance(payload, bytes):
        out["payload_b64"] = base64.b64encode(payload).decode("ascii")
    else:
        out["payload"] = payload
    return out


@router.post(
    "/api/gossip",
    dependencies=[Depends(require_admin)],
    description=(
        "Sign and spread a message; answers once it is committed here and its push has started.\n\n"
        "The payload is a JSON value (`payload`) or bytes (`payload_b64`, base64), never both. The whole "
        f"signed message may be at most {MAX_MESSAGE_BYTES} bytes (about 200 of them are the envelope "
        "and topic); a larger one answers 413 `too_large`. Bytes travel as msgpack bin end to end and "
        "are listed and streamed as `payload_b64`.\n\n"
        "Past max_pending_publishes publishes waiting for the store the answer is 429 (rate_limited), "
        "counted in /metrics as f0mesh_gossip_publish_overloaded_total: retry later."
    ),
    openapi_extra={
        "requestBody": {
            "content": {
                "application/json": {
                    "examples": {
                        "json": {"value": {"topic": "news", "payload": {"headline": "hello"}}},
                        "bytes": {"value": {"topic": "blobs", "payload_b64": "AP9yYXc="}},
                    }
                }
            }
        }
    },
)
async def publish(body: PublishRequest, node: Node = Depends(get_node)) -> dict[str, Any]:
    return {"id": await node.publish(body.topic, body.value())}


@router.get(
    "/api/gossip/messages",
    responses={
        200: {
            "content": {
                "application/json": {
                    "example": {
                        "messages": [
                            {
                                "n": 42,
                                "id": "2v6n3b5kq0c4m8r1t7w9y2z3a5d6f8h0",
                                "origin": "12D3KooW...",
                                "topic": "news",
                                "hops": 1,
                                "received_at": 1765000000.0,
                                "payload": {"headline": "hello"},
                            }
                        ],
                        "next": 42,
                    }
                }
            }
        }
    },
)
async def messages(
    topic: str | None = Query(None, max_length=128),
    limit: int = Query(100, ge=1, le=10000),
    since: int | None = Query(
        None,
        ge=0,
        le=MAX_N,
        description="only messages stored after this n, oldest first (a cursor; see next)",
    ),
    node: Node = Depends(get_node),
) -> dict[str, Any]:
    """Without ``since``, the newest messages first. ``n`` is this node's storing order; ``next`` is
    the cursor to pass as ``since`` for what comes after this page (the same as the SSE ids of
    /api/gossip/subscribe)."""
    rows = await node.messages(topic=topic or None, limit=limit, since=since)
    cursor = max((r["n"] for r in rows if r["n"] is not None), default=since or 0)
    return {"messages": [message_json(r) for r in rows], "next": cursor}


@router.get("/api/audit")
async def audit(
    limit: int = Query(100, ge=1, le=10000),
    event: str | None = Query(None, pattern="^(" + "|".join(AUDIT_EVENTS) + ")$"),
    node: Node = Depends(get_node),
) -> dict[str, Any]:
    return {"entries": await node.audit(limit=limit, event=event)}


class SubscribeRequest(Strict):
    topic: str = Field(min_length=1, max_length=128, pattern=SUBSCRIPTION_PATTERN)


@router.get(
    "/api/gossip/subscriptions",
    summary="The topics this node carries, and those each neighbour announced",
    responses=answer(SUBSCRIPTIONS),
)
async def subscriptions(node: Node = Depends(get_node)) -> dict[str, Any]:
    """The topics this node carries, stores and relays: ``topics`` (``*``: every topic, the default
    without --topic) and the ``system`` ones it always takes. Messages of other topics are refused
    (audit reason ``not_subscribed``); its own publishes are stored whatever the topic.
    ``neighbours``: what each linked peer announced (null: a node of the previous version, which
    is sent everything)."""
    return node.topics.subscriptions()


@router.post(
    "/api/gossip/subscriptions",
    summary="Join a topic (admin)",
    dependencies=[Depends(require_admin)],
    openapi_extra=bodies(topic={"topic": "news"}, every_topic={"topic": "*"}),
    responses=answer(SUBSCRIPTIONS, "the subscriptions, as GET answers them"),
)
async def subscribe(body: SubscribeRequest, node: Node = Depends(get_node)) -> dict[str, Any]:
    """Subscribe to a topic (``*``: every topic) and tell the neighbours; 409 ``too_many_topics``
    past 256. Answers the subscriptions as GET does."""
    return await node.topics.join(body.topic)


@router.delete(
    "/api/gossip/subscriptions/{topic:path}",
    summary="Leave a topic (admin)",
    dependencies=[Depends(require_admin)],
    responses=answer({**SUBSCRIPTIONS, "topics": []}, "the subscriptions, as GET answers them"),
)
async def unsubscribe(topic: str, node: Node = Depends(get_node)) -> dict[str, Any]:
    """Leave a topic (its mesh peers are PRUNEd); 404 if not subscribed, 409 ``system_topic`` for
    telemetry, trust or state."""
    return await node.topics.leave(topic[:256])


@router.get(
    "/api/gossip/mesh",
    summary="Each topic's mesh: the peers new messages are pushed to",
    responses=answer({
        "news": {"peers": [{"peer_id": PEER, "score": 0.12, "trust": 0.12}]},
        "prices": {"peers": [{"peer_id": OTHER_PEER, "score": 0.2, "trust": 0.2}], "fanout": True},
    }),
)  # fmt: skip
async def mesh(node: Node = Depends(get_node)) -> dict[str, Any]:
    """Per topic, the peers each new message is pushed to at once, with their scores; a topic this
    node publishes to without subscribing shows its fanout set (``"fanout": true``)."""
    return node.topics.mesh()


class TopicPolicyRequest(Strict):
    publishers: list[Annotated[str, Field(min_length=1, max_length=128)]] = Field(
        max_length=MAX_PUBLISHERS, description="PeerIds that may publish besides this node"
    )


@router.get(
    "/api/gossip/policies",
    responses={200: {"content": {"application/json": {"example": {"policies": [{
        "topic": "prices", "creator": "12D3KooWA...", "created": [1765000000000, 0],
        "publishers": ["12D3KooWA...", "12D3KooWB..."],
    }]}}}}},
)  # fmt: skip
async def topic_policies(node: Node = Depends(get_node)) -> dict[str, Any]:
    """The topics whose publishers are restricted, with the creator whose policy won; a topic not
    listed is open to every origin."""
    return node.topics.policies()


@router.post(
    "/api/gossip/topics/{topic:path}/policy",
    dependencies=[Depends(require_admin)],
    openapi_extra={"requestBody": {"content": {"application/json": {"examples": {
        "two publishers": {"value": {"publishers": ["12D3KooWB...", "12D3KooWC..."]}},
    }}}}},
)  # fmt: skip
async def set_topic_policy(
    body: TopicPolicyRequest,
    topic: str = Path(max_length=128, pattern=TOPIC_PATTERN),
    node: Node = Depends(get_node),
) -> dict[str, Any]:
    """Declare who may publish to ``topic``: this node and ``publishers``. The policy is signed and
    replicated; every node then refuses other origins' messages on the topic (audit reason
    ``not_publisher``) and a local publish by another node answers 403 ``not_publisher``. The first
    create wins: once another node's policy holds the topic this answers 403; the creator may post
    again to change the list. 409 ``system_topic`` for telemetry, trust and state."""
    return await node.topics.set_policy(topic, body.publishers)
