"""Request limits: a body-size cap enforced before the body is read in full (a plain ASGI
middleware), and the slots of long-lived event streams."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from typing import Any

from f0mesh.errors import RateLimitedError

Scope = dict[str, Any]


class BodyLimitMiddleware:
    """413 at once when Content-Length is over the cap; chunked bodies are cut off at the cap."""

    def __init__(self, app: Any, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        length = None
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    length = int(value)
                except ValueError:
                    await self._reject(send, 400, "bad_request", "Content-Length is not a number")
                    return
        if length is not None and length > self.max_bytes:
            await self._reject(
                send, 413, "too_large", f"body of {length} bytes exceeds the {self.max_bytes} byte cap"
            )
            return
        if length is not None:
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break
            size += len(message.get("body", b""))
            if size > self.max_bytes:
                await self._reject(send, 413, "too_large", f"body exceeds the {self.max_bytes} byte cap")
                return
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        body = b"".join(chunks)
        replayed = False

        async def replay() -> dict[str, Any]:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)

    @staticmethod
    async def _reject(send: Any, status: int, code: str, detail: str) -> None:
        body = json.dumps({"error": code, "detail": detail}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


class StreamSlots:
    """Concurrent event streams. Anonymous ones are capped per client address and in total; the
    admin token (bearer or session cookie) has slots of its own, so strangers holding idle streams
    never lock the operator's dashboard out."""

    def __init__(self, *, per_client: int, anonymous: int, admin: int) -> None:
        self.per_client = per_client
        self.anonymous = anonymous
        self.admin = admin
        self.by_client: Counter[str] = Counter()
        self.anonymous_held = 0
        self.admin_held = 0

    def take(self, client: str, *, admin: bool) -> Callable[[], None]:
        """Hold a slot until the returned function is called; RateLimitedError when none is free."""
        if admin:
            if self.admin_held >= self.admin:
                raise RateLimitedError(f"all {self.admin} admin event streams are in use")
            self.admin_held += 1
        elif self.by_client[client] >= self.per_client:
            raise RateLimitedError(f"at most {self.per_client} anonymous event streams per client address")
        elif self.anonymous_held >= self.anonymous:
            raise RateLimitedError(
                f"all {self.anonymous} anonymous event streams are in use; the admin token has its own"
            )
        else:
            self.by_client[client] += 1
            self.anonymous_held += 1
        released = False

        def release() -> None:
            nonlocal released
            if released:
                return
            released = True
            if admin:
                self.admin_held -= 1
                return
            self.anonymous_held -= 1
            self.by_client[client] -= 1
            if not self.by_client[client]:
                del self.by_client[client]

        return release
