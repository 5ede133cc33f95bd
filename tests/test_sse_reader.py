"""The one text/event-stream parser the CLI's reader and the async client share (no node needed)."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from f0mesh import client, sse_reader
from f0mesh.errors import F0MeshError
from f0mesh.sse_reader import ServerEvent


def test_events_ids_comments_and_multiline_data() -> None:
    lines = [
        "id: 7",
        "",
        ": keep-alive",
        "event: message",
        "id: 8",
        'data: {"a":',
        "data: 1}",
        "",
        "",
        "event: x",
    ]
    assert list(sse_reader.parse(iter(lines))) == [
        ServerEvent("id", None, "7"),
        ServerEvent("message", {"a": 1}, "8"),
    ]


@pytest.mark.parametrize(
    "lines",
    [["data: not json", ""], ["data: " + "x" * sse_reader.MAX_EVENT_CHARS]],
    ids=["not-json", "oversize"],
)
def test_a_bad_event_is_one_error_on_both_readers(lines: list[str]) -> None:
    with pytest.raises(F0MeshError) as sync_error:
        list(sse_reader.parse(iter(lines)))
    assert sync_error.value.code == "bad_response"

    async def read_async() -> list[ServerEvent]:
        response = httpx.Response(200, content="".join(line + "\n" for line in lines).encode())
        return [item async for item in client._events(response)]

    with pytest.raises(client.NodeUnreachable) as async_error:  # a ClientError, never a bare ValueError
        asyncio.run(read_async())
    assert async_error.value.code == "bad_response"
