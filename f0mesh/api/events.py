"""Server-sent events: live link, QoS and message updates for the dashboard and scripts."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import StreamingResponse

from f0mesh.api.auth import is_admin
from f0mesh.api.limits import StreamSlots
from f0mesh.api.sse import EventStreamResponse, sse_responses
from f0mesh.api.worker import get_node
from f0mesh.events import PRIVATE_TOPICS
from f0mesh.node import Node

router = APIRouter(tags=["events"])
KEEPALIVE_S = 15.0
EXAMPLE = (
    'event: member\ndata: {"topic": "member", "at": 1765000000.0, '
    '"data": {"event": "failed", "peer_id": "12D3KooW...", "reason": "no frame from the peer for 4.0 s"}}\n\n'
)


@router.get(
    "/api/events",
    response_class=EventStreamResponse,
    responses={
        **sse_responses(EXAMPLE, "server-sent events: link, qos, message, member, dropped"),
        429: {"description": "no event stream slot free for this client"},
    },
)
async def events(
    request: Request,
    topic: str | None = Query(None, max_length=64, description="only events of this topic"),
    node: Node = Depends(get_node),
) -> StreamingResponse:
    """Anonymous streams are capped per client address and in total; the admin token has its own slots.
    A consumer too slow for the node's pace gets ``event: dropped`` with how many events it missed."""
    slots: StreamSlots = request.app.state.event_slots
    admin = is_admin(request)
    release = slots.take(request.client.host if request.client else "", admin=admin)

    async def stream() -> AsyncIterator[str]:
        yield ": connected\n\n"
        async with node.events.subscribe() as subscription:
            while not await request.is_disconnected():
                try:
                    event: dict[str, Any] = await asyncio.wait_for(subscription.queue.get(), KEEPALIVE_S)
                except TimeoutError:
                    yield ": keep-alive\n\n"
                    continue
                dropped = subscription.take_dropped()
                if dropped:
                    yield f"event: dropped\ndata: {json.dumps({'dropped': dropped})}\n\n"
                if (topic and event["topic"] != topic) or (event["topic"] in PRIVATE_TOPICS and not admin):
                    continue
                yield f"event: {event['topic']}\ndata: {json.dumps(event, default=str)}\n\n"

    response = EventStreamResponse(stream(), headers={"Cache-Control": "no-store"})
    response.release = release
    return response


@router.get("/api/telemetry")
async def telemetry(node: Node = Depends(get_node)) -> dict[str, Any]:
    """The whole mesh's link health as gossiped by every node (this node's own view included)."""
    return {"nodes": node.telemetry.mesh_view(node.peer_id)}
