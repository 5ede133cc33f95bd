"""Server-sent events: live link, QoS and message updates for the dashboard and scripts."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import StreamingResponse

from f0mesh.api.auth import is_admin
from f0mesh.api.limits import StreamSlots
from f0mesh.api.worker import get_node
from f0mesh.node import Node

router = APIRouter(tags=["events"])
KEEPALIVE_S = 15.0


class _SlotStream(StreamingResponse):
    """Gives the stream's slot back however the response ends, even before its body starts."""

    def __init__(self, content: AsyncIterator[str], release: Callable[[], None], **kwargs: Any) -> None:
        super().__init__(content, **kwargs)
        self.release = release

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.release()


@router.get("/api/events", responses={429: {"description": "no event stream slot free for this client"}})
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
                if topic and event["topic"] != topic:
                    continue
                yield f"event: {event['topic']}\ndata: {json.dumps(event, default=str)}\n\n"

    return _SlotStream(
        stream(), release, media_type="text/event-stream", headers={"Cache-Control": "no-store"}
    )


@router.get("/api/telemetry")
async def telemetry(node: Node = Depends(get_node)) -> dict[str, Any]:
    """The whole mesh's link health as gossiped by every node (this node's own view included)."""
    nodes = dict(node.telemetry)
    nodes[node.peer_id] = {**node.telemetry_summary(), "received_at": None}
    return {"nodes": nodes}
