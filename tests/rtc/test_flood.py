"""A 30 s flood of small messages on one link: the link stays open (aioice consent checks keep
passing because framing bounds the send buffer) and neither side's memory grows without bound."""

from __future__ import annotations

import asyncio
import time

from f0mesh.config import NodeConfig
from f0mesh.node import Node

from nodes import free_port, rss_kib

FLOOD_S = 30.0


async def test_small_message_flood_keeps_link_and_memory(node_factory, tmp_path) -> None:
    target = await asyncio.to_thread(node_factory, "target")
    sender = Node(NodeConfig(data_dir=tmp_path / "sender", port=free_port(), admin_token="x"))
    await sender.start()
    try:
        link = await sender.links.dial_url(target.url)
        sent = 0
        rss_target, rss_sender = [], []
        started = time.monotonic()
        next_sample = started + 5
        while time.monotonic() - started < FLOOD_S:
            await asyncio.gather(*(link.send({"t": "hb", "pad": b"x" * 80}) for _ in range(200)))
            sent += 200
            if time.monotonic() >= next_sample:
                rss_target.append(rss_kib(target.proc.pid))
                rss_sender.append(rss_kib())
                next_sample += 5
        assert link.state.value == "open"
        links = await asyncio.to_thread(target.links)
        assert [lk["state"] for lk in links] == ["open"]
        assert link.framed.stats.frames_out < link.framed.stats.messages_out / 5  # batched
        # Memory after the first samples stays within a fixed margin: no growth with the flood's length.
        assert max(rss_target[1:]) - rss_target[1] < 40 * 1024, rss_target
        assert max(rss_sender[1:]) - rss_sender[1] < 40 * 1024, rss_sender
        print(f"flood: {sent} messages in {FLOOD_S:.0f} s; RSS KiB target {rss_target} sender {rss_sender}")
    finally:
        await sender.stop()
