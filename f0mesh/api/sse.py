"""What server-sent event routes share: the response type that OpenAPI shows as text/event-stream."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from fastapi.responses import StreamingResponse


class EventStreamResponse(StreamingResponse):
    """``release`` runs however the response ends, even if its body never started (a client gone
    before the first byte), which the stream's own ``finally`` would miss."""

    media_type = "text/event-stream"
    release: Callable[[], None] | None = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            if self.release is not None:
                self.release()


def sse_responses(example: str, description: str) -> dict[int | str, dict[str, Any]]:
    """``responses=`` of a route that streams: its 200 is text/event-stream, with an example."""
    return {
        200: {
            "description": description,
            "content": {"text/event-stream": {"schema": {"type": "string"}, "example": example}},
        }
    }


def frame(event: str, data: Any, event_id: int | None = None) -> str:
    """One event; ``id`` only on events a client may resume after (EventSource's Last-Event-ID)."""
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"
