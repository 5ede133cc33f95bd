"""The async client against a real node: typed errors, bytes, and a subscription that survives a restart."""

from __future__ import annotations

import asyncio

import pytest

from f0mesh.client import NodeClient, NodeUnreachable, NotFound, Unauthorized

from nodes import TOKEN, free_port


async def test_subscribe_resumes_after_the_node_restarts_without_loss_or_repeat(node_factory) -> None:
    node = await asyncio.to_thread(node_factory, "client")
    async with NodeClient(node.url, TOKEN) as client:
        first = [await client.publish("t", {"n": i}) for i in range(2)]
        stream = client.subscribe("t", since=0)
        got = [(await asyncio.wait_for(anext(stream), 30))["id"] for _ in range(2)]
        assert got == first
        await asyncio.to_thread(node.stop)  # the stream breaks; the iterator reconnects on its own
        await asyncio.to_thread(node.start)
        later = [await client.publish("t", b"\x00" + bytes([i])) for i in range(2)]
        resumed = [await asyncio.wait_for(anext(stream), 60) for _ in range(2)]
        assert [m["id"] for m in resumed] == later and resumed[1]["payload"] == b"\x00\x01"
        await stream.aclose()

        with pytest.raises(NotFound):
            await client.document("no-such-document")
    async with NodeClient(node.url) as anonymous:
        with pytest.raises(Unauthorized):
            await anonymous.publish("t", 1)
    async with NodeClient(f"http://127.0.0.1:{free_port()}") as nobody:
        with pytest.raises(NodeUnreachable):
            await nobody.health()
