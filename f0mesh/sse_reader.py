"""Reading a node's server-sent event streams from the command line (synchronous, over httpx).

The parsing follows the WHATWG EventSource rules for the fields a node sends (id, event, data,
comments); ``last_id`` is kept across reconnections so a reader resumes after the last event seen.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx

from f0mesh.errors import F0MeshError

MAX_EVENT_CHARS = 4 << 20  # a node's events are far smaller; a bigger one is not a node talking
GIVE_UP_S = 60.0  # without a connection this long, the node is gone rather than restarting
RETRY_S = 1.0


@dataclass(frozen=True, slots=True)
class ServerEvent:
    event: str
    data: Any
    id: str | None


class EventParser:
    """A text/event-stream fed line by line (no I/O, so the sync reader and the async client share it).

    ``data`` is JSON; an id alone comes with ``data`` None and event "id" (a node sends one on
    connecting: the position a reconnection resumes from). Raises F0MeshError(bad_response) for an
    event that is not JSON or larger than any a node makes."""

    def __init__(self) -> None:
        self._event = "message"
        self._data: list[str] = []
        self._id: str | None = None
        self._size = 0

    def _reset(self) -> None:
        self._event, self._data, self._id, self._size = "message", [], None, 0

    def feed(self, line: str) -> ServerEvent | None:
        """The event this line completes, if any."""
        if not line:
            event, data, event_id = self._event, self._data, self._id
            self._reset()
            if data:
                try:
                    value = json.loads("\n".join(data))
                except ValueError as exc:
                    raise F0MeshError("the node sent an event that is not JSON", code="bad_response") from exc
                return ServerEvent(event, value, event_id)
            return ServerEvent("id", None, event_id) if event_id is not None else None
        self._size += len(line)
        if self._size > MAX_EVENT_CHARS:
            raise F0MeshError("the node sent an event larger than any it should", code="bad_response")
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "event":
            self._event = value
        elif name == "data":
            self._data.append(value)
        elif name == "id":
            self._id = value
        return None


def parse(lines: Iterator[str]) -> Iterator[ServerEvent]:
    """The events of a stream's lines (see EventParser)."""
    parser = EventParser()
    for line in lines:
        item = parser.feed(line)
        if item is not None:
            yield item


class EventReader:
    """Follows one stream of a node, reconnecting (and resuming with Last-Event-ID) when it drops."""

    def __init__(
        self,
        base_url: str,
        token: str | None,
        path: str,
        params: dict[str, Any],
        on_open: Callable[[], None] | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.on_open = on_open
        self.path = path
        self.params = params
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.last_id: str | None = None

    def __iter__(self) -> Iterator[ServerEvent]:
        failing_since: float | None = None
        timeout = httpx.Timeout(10.0, read=60.0)  # the node sends a keep-alive every 15 s
        with httpx.Client(base_url=self.base_url, headers=self.headers, timeout=timeout) as http:
            while True:
                headers = {"Last-Event-ID": self.last_id} if self.last_id is not None else {}
                try:
                    with http.stream("GET", self.path, params=self.params, headers=headers) as response:
                        if response.status_code >= 400:
                            response.read()
                            raise _refusal(response)
                        if self.on_open is not None:
                            self.on_open()
                        failing_since = None
                        for item in parse(response.iter_lines()):
                            if item.id is not None:
                                self.last_id = item.id
                            yield item
                    time.sleep(RETRY_S)  # the node ended the stream (restarting, perhaps): follow again
                except httpx.HTTPError as exc:
                    failing_since = failing_since or time.monotonic()
                    if time.monotonic() - failing_since > GIVE_UP_S:
                        raise F0MeshError(
                            f"lost the node at {self.base_url}: {type(exc).__name__}", code="unreachable"
                        ) from exc
                    time.sleep(RETRY_S)


def _refusal(response: httpx.Response) -> F0MeshError:
    try:
        body = response.json()
    except ValueError:
        body = {"error": "bad_response", "detail": response.text[:200]}
    return F0MeshError(f"{body.get('error', 'error')}: {body.get('detail', '')}", status=response.status_code)
