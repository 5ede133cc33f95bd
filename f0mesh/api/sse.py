"""What server-sent event routes share: the response type that OpenAPI shows as text/event-stream."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable
from typing import Any

from fastapi.responses import StreamingResponse


class EventStreamResponse(StreamingResponse):
    """``release`` runs however the response ends, even if its body never started (a client gone
    before the first byte), which the stream's own ``finally`` would miss.

    A stream never ends by itself, so at shutdown it would hold the server to its graceful timeout
    and then be cancelled, logged as an error with a traceback. When the app's ``streams_closing``
    event is set (serve.py sets it as the server starts to shut down), the body is ended instead:
    the client sees a complete response, which an EventSource or ``f0mesh subscribe`` resumes from
    once the node is back."""

    media_type = "text/event-stream"
    release: Callable[[], None] | None = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            app = scope.get("app")
            closing = getattr(app.state, "streams_closing", None) if app is not None else None
            if closing is None:
                await super().__call__(scope, receive, send)
            else:
                await self._until(closing, scope, receive, send)
        finally:
            if self.release is not None:
                self.release()

    async def _until(self, closing: asyncio.Event, scope: Any, receive: Any, send: Any) -> None:
        sent: set[str] = set()

        async def tracked(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                sent.add("start")
            elif message["type"] == "http.response.body" and not message.get("more_body", False):
                sent.add("end")
            await send(message)

        streaming = asyncio.ensure_future(super().__call__(scope, receive, tracked))
        shutdown = asyncio.ensure_future(closing.wait())
        try:
            await asyncio.wait((streaming, shutdown), return_when=asyncio.FIRST_COMPLETED)
        finally:
            shutdown.cancel()
            if not streaming.done():
                streaming.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await streaming
        if not streaming.cancelled():
            streaming.result()  # the stream's own end, or its error (a client gone)
            return
        if "start" not in sent:
            start = {"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers}
            await send(start)
        if "end" not in sent:
            await send({"type": "http.response.body", "body": b"", "more_body": False})


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
