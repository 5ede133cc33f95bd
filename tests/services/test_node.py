"""The composed node: its parts register their ctl kinds, an application adds its own, stop leaves nothing."""

from __future__ import annotations

import asyncio

from f0mesh.config import NodeConfig
from f0mesh.ctl import CtlKind
from f0mesh.node import Node

from .kit import FakeLink


async def test_ctl_kinds_are_the_parts_and_the_applications_and_stop_ends_every_task(tmp_path) -> None:
    node = Node(NodeConfig(data_dir=tmp_path, admin_token="t" * 32))
    got: list[tuple[str, dict]] = []
    node.ctl.register("app.ping", lambda peer, message: got.append((peer, message)))  # before start
    async with asyncio.timeout(60):
        await node.start()
        try:
            kinds = {CtlKind.GOSSIP, CtlKind.PEX, CtlKind.STATE, CtlKind.SIG, CtlKind.DIRECT, "app.ping"}
            assert set(node.ctl.kinds()) == kinds
            assert len(node.tasks) >= 5  # peer exchange, retention, trust, telemetry and gc loops
            await node.link_events.link_message(FakeLink("friend"), {"t": "app.ping", "n": 1})
            await node.set_blocked("foe", True)
            await node.link_events.link_message(FakeLink("foe"), {"t": "app.ping", "n": 2})
            assert got == [("friend", {"t": "app.ping", "n": 1})]
        finally:
            await node.stop()
    assert len(node.tasks) == 0
