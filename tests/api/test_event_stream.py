"""/api/events in process: slot accounting, and a slow consumer told how many events it missed."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import pytest

from f0mesh.api.app import create_app
from f0mesh.api.limits import StreamSlots
from f0mesh.config import NodeConfig
from f0mesh.errors import ConfigError, RateLimitedError
from f0mesh.events import QUEUE_SIZE
from f0mesh.node import Node


def test_slots_per_client_in_total_and_for_the_admin() -> None:
    slots = StreamSlots(per_client=2, anonymous=3, admin=1)
    held = [slots.take("a", admin=False), slots.take("a", admin=False)]
    with pytest.raises(RateLimitedError, match="per client address"):
        slots.take("a", admin=False)
    held.append(slots.take("b", admin=False))
    with pytest.raises(RateLimitedError, match="anonymous event streams are in use"):
        slots.take("c", admin=False)
    admin = slots.take("a", admin=True)
    with pytest.raises(RateLimitedError, match="admin event streams"):
        slots.take("a", admin=True)
    held[0]()
    held[0]()  # a second release gives nothing back twice
    assert slots.anonymous_held == 2 and slots.by_client == {"a": 1, "b": 1}
    held.append(slots.take("c", admin=False))
    for release in [*held[1:], admin]:
        release()
    assert slots.anonymous_held == 0 and slots.admin_held == 0 and not slots.by_client


@pytest.mark.parametrize(
    "field, value",
    [
        ("http_header_timeout", 0),
        ("http_max_pending", 0),
        ("http_min_body_rate", 0),
        ("sse_admin_streams", 0),
    ],
)
def test_http_limits_are_validated(tmp_path, field: str, value: float) -> None:
    with pytest.raises(ConfigError):
        NodeConfig(data_dir=tmp_path, **{field: value})


async def test_a_slow_consumer_is_told_how_many_events_it_missed(tmp_path) -> None:
    node = Node(NodeConfig(data_dir=tmp_path, admin_token="t"))
    await node.start()
    app = create_app(node, manage_node=False)
    chunks: list[str] = []
    flowing = asyncio.Event()
    flowing.set()
    disconnect = asyncio.Event()

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.body":
            await flowing.wait()  # closed: the client has stopped reading
            chunks.append(message.get("body", b"").decode())

    async def receive() -> dict[str, Any]:
        await disconnect.wait()
        return {"type": "http.disconnect"}

    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/api/events",
        "raw_path": b"/api/events",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"node")],
        "client": ("127.0.0.1", 40000),
        "server": ("node", 80),
    }
    task = asyncio.create_task(app(scope, receive, send))
    try:
        for _ in range(200):  # until the stream has subscribed and delivered an event
            node.events.publish("warm", {})
            await asyncio.sleep(0.01)
            if any("event: warm" in c for c in chunks):
                break
        flowing.clear()
        burst = QUEUE_SIZE + 100
        for i in range(burst):
            node.events.publish("burst", {"i": i})
        flowing.set()
        last = f'"i": {burst - 1}'
        for _ in range(500):
            await asyncio.sleep(0.01)
            if any(last in c for c in chunks):
                break
        text = "".join(chunks)
        dropped = [int(n) for n in re.findall(r'event: dropped\ndata: \{"dropped": (\d+)\}', text)]
        assert dropped and sum(dropped) >= burst - QUEUE_SIZE, text[-500:]
        assert last in text
        assert app.state.event_slots.anonymous_held == 1
    finally:
        disconnect.set()
        await asyncio.wait_for(task, 10)
        await node.stop()
    assert app.state.event_slots.anonymous_held == 0
