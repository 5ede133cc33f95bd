"""GET /api/gossip/subscribe: one topic's messages as server-sent events, resumable without loss.

Every message event carries ``id: n``, this node's storing order. The stream reads the store, never
a memory queue: live messages only wake it. So ``Last-Event-ID`` (or ``?since=``) resumes exactly
after the last message seen, the seam between replay and live has neither gaps nor duplicates,
and a consumer that reads slowly costs one page of rows, not a growing queue. A consumer that falls
more than ``max_backlog`` messages behind is skipped ahead to the newest: it gets ``event:
dropped`` with how many it missed and the range (after, upto], which it can still page through
/api/gossip/messages?since=after (or resume from, since the event carries no id).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

from fastapi import APIRouter, Depends, Header, Query, Request

from f0mesh.api.auth import is_admin
from f0mesh.api.gossip import MAX_N, TOPIC_PATTERN, message_json
from f0mesh.api.limits import StreamSlots
from f0mesh.api.sse import EventStreamResponse, frame, sse_responses
from f0mesh.api.worker import get_node
from f0mesh.errors import PolicyError
from f0mesh.gossip import StoredMessage
from f0mesh.node import Node
from f0mesh.store import Store

router = APIRouter(tags=["gossip"])

KEEPALIVE_S = 15.0
PAGE = 50  # rows held per stream at a time: up to 64 KiB each, times MAX_STREAMS
MAX_BACKLOG = 1000

Subscribe = Callable[[str | None, Callable[[StoredMessage], None]], Callable[[], None]]
Event = tuple[str, dict[str, Any], int | None]  # (event name, data, id)


class TopicFeed:
    """One topic's messages after a cursor, in storing order, from the store."""

    def __init__(
        self,
        store: Store,
        subscribe: Subscribe,
        topic: str,
        since: int | None,
        *,
        max_backlog: int = MAX_BACKLOG,
        page: int = PAGE,
    ) -> None:
        self._store = store
        self._subscribe = subscribe
        self.topic = topic
        self.last = since
        self.max_backlog = max_backlog
        self.page = page
        self.behind = 0  # messages committed that this consumer has not been given yet (roughly)
        self._wake = asyncio.Event()
        self._unsubscribe: Callable[[], None] | None = None

    async def __aenter__(self) -> TopicFeed:
        # subscribed before the starting point is read: a message committed in between is either at
        # or before that point, or found by the first read after it
        self._unsubscribe = self._subscribe(self.topic, self._committed)
        if self.last is None:
            self.last = await self._store.last_message_n()
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()

    def _committed(self, message: StoredMessage) -> None:
        self.behind += 1
        self._wake.set()

    async def next_events(self, timeout: float) -> list[Event]:
        """The next events (at most a page), or [] when nothing came within ``timeout``."""
        if self.last is None:
            raise RuntimeError("TopicFeed used outside its async context")
        self._wake.clear()
        if self.behind > self.max_backlog:
            return [await self._skip()]
        rows = await self._store.list_messages(topic=self.topic, since=self.last, limit=self.page)
        if not rows:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)
            return []
        self.last = rows[-1]["n"]
        self.behind = max(0, self.behind - len(rows))
        return [("message", message_json(r), r["n"]) for r in rows]

    async def _skip(self) -> Event:
        after = self.last or 0
        head = await self._store.last_message_n()
        missed = await self._store.count_messages(topic=self.topic, after=after, upto=head)
        self.last, self.behind = head, 0
        return ("dropped", {"dropped": missed, "after": after, "upto": head}, None)


EXAMPLE = (
    ": connected\n\nid: 41\n\n"
    "id: 42\nevent: message\n"
    'data: {"n":42,"id":"2v6n3b5kq0c4m8r1t7w9y2z3a5d6f8h0","origin":"12D3KooW...","topic":"news",'
    '"hops":1,"received_at":1765000000.0,"payload":{"headline":"hello"}}\n\n'
    'event: dropped\ndata: {"dropped":1200,"after":42,"upto":1242}\n\n'
)


@router.get(
    "/api/gossip/subscribe",
    summary="Stream one topic's messages (server-sent events, resumable)",
    response_class=EventStreamResponse,
    responses={
        **sse_responses(EXAMPLE, "server-sent events: `message` (with `id:`) and `dropped`"),
        403: {
            "description": "`not_subscribed`: the node does not carry the topic and the client is anonymous",
            "content": {"application/json": {"example": {
                "error": "not_subscribed",
                "detail": "this node does not subscribe to 'sports': an anonymous stream reads only ...",
            }}},
        },
        429: {"description": "no event stream slot free for this client (shared with /api/events)"},
    },
)  # fmt: skip
async def subscribe(
    request: Request,
    topic: str = Query(min_length=1, max_length=128, pattern=TOPIC_PATTERN),
    since: int | None = Query(
        None,
        ge=0,
        le=MAX_N,
        description="replay the stored messages after this id first (default: only new ones)",
    ),
    last_event_id: int | None = Header(
        None,
        alias="Last-Event-ID",
        ge=0,
        le=MAX_N,
        description="as since; sent by EventSource when it reconnects",
    ),
    node: Node = Depends(get_node),
) -> EventStreamResponse:
    """The messages of one topic as they are stored here, each with ``id:`` (its n, as in
    /api/gossip/messages). Bytes payloads come as ``payload_b64``. A consumer more than 1000 messages
    behind is skipped ahead and told with a ``dropped`` event (the missed range stays readable).

    Anonymous clients may stream only the topics this node carries (``*``, named, or system; 403
    ``not_subscribed`` otherwise). With the admin token, streaming a topic the node does not carry
    makes it join the topic, announced to the mesh, as POST /api/gossip/subscriptions does; it
    stays joined after the stream ends."""
    admin, carried = is_admin(request), node.topics.carries(topic)
    if not (carried or admin):
        raise PolicyError(
            f"this node does not subscribe to {topic!r}: an anonymous stream reads only the topics it "
            "carries (GET /api/gossip/subscriptions); with the admin token, a stream joins the topic",
            code="not_subscribed",
        )
    slots: StreamSlots = request.app.state.event_slots  # one budget with /api/events
    release = slots.take(request.client.host if request.client else "", admin=admin)
    if not carried:
        try:
            await node.topics.join(topic)  # announced to the mesh, so the topic's messages come here
        except BaseException:
            release()
            raise
    start = last_event_id if last_event_id is not None else since
    feed = TopicFeed(node.store, node.gossip.subscribe, topic, start)

    async def stream() -> AsyncIterator[str]:
        yield ": connected\n\n"
        async with feed:
            yield f"id: {feed.last}\n\n"  # where this stream starts: a reconnection resumes here
            while not await request.is_disconnected():
                events = await feed.next_events(KEEPALIVE_S)
                if not events:
                    yield ": keep-alive\n\n"
                for name, data, event_id in events:
                    yield frame(name, data, event_id)

    response = EventStreamResponse(stream(), headers={"Cache-Control": "no-store"})
    response.release = release
    return response
