"""Publishing and reading gossip, and the audit log."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query
from pydantic import Field

from f0mesh.api.auth import require_admin
from f0mesh.api.models import Strict
from f0mesh.api.worker import get_node
from f0mesh.node import Node

router = APIRouter(tags=["gossip"])

AUDIT_EVENTS = ("published", "sent", "received", "forwarded", "duplicate", "rejected")


class PublishRequest(Strict):
    topic: str = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.:/-]+$")
    payload: Any = Field(description="any JSON value")


@router.post("/api/gossip", dependencies=[Depends(require_admin)])
async def publish(body: PublishRequest, node: Node = Depends(get_node)) -> dict[str, Any]:
    """Sign and spread a message; answers once it is committed here and its push has started.

    Past max_pending_publishes publishes waiting for the store the answer is 429 (rate_limited), counted
    in /metrics as f0mesh_gossip_publish_overloaded_total: retry later.
    """
    return {"id": await node.publish(body.topic, body.payload)}


@router.get("/api/gossip/messages")
async def messages(
    topic: str | None = Query(None, max_length=128),
    limit: int = Query(100, ge=1, le=10000),
    node: Node = Depends(get_node),
) -> dict[str, Any]:
    rows = await node.store.list_messages(topic=topic or None, limit=limit)
    return {
        "messages": [
            {k: r[k] for k in ("id", "origin", "topic", "payload", "hops", "received_at")} for r in rows
        ]
    }


@router.get("/api/audit")
async def audit(
    limit: int = Query(100, ge=1, le=10000),
    event: str | None = Query(None, pattern="^(" + "|".join(AUDIT_EVENTS) + ")$"),
    node: Node = Depends(get_node),
) -> dict[str, Any]:
    return {"entries": await node.store.list_audit(limit=limit, event_name=event)}
