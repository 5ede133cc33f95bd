"""Issue 26: a web page's link carries application topics only; the node's own topics from a page are
dropped before the gossip engine sees them, and audited."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from f0mesh.bindings import gossip_ctl
from f0mesh.crdt import HLCTimestamp
from f0mesh.gossip.envelope import Envelope
from f0mesh.identity import Identity

RESERVED = frozenset({"state", "trust", "telemetry"})


class Engine:
    def __init__(self) -> None:
        self.got: list[tuple[str, dict[str, Any]]] = []

    async def on_message(self, peer_id: str, message: dict[str, Any]) -> None:
        self.got.append((peer_id, message))


def envelope(topic: str) -> bytes:
    author = Identity.generate()
    return Envelope.create(author, 1, HLCTimestamp(1, 0, author.peer_id), topic, {"x": 1}, 8).encode()


async def test_a_page_relays_application_topics_only() -> None:
    engine, refused = Engine(), []
    links = {"page": SimpleNamespace(browser=True), "node": SimpleNamespace(browser=False)}
    handle = gossip_ctl(engine, links, RESERVED, lambda *row: refused.append(row))  # type: ignore[arg-type]
    chat, state, garbage = envelope("chat"), envelope("state"), b"\x01"
    message = {"t": "gossip", "m": {"type": "msgs", "msgs": [chat, state, garbage]}}

    await handle("page", message)  # the garbage is left for the engine to refuse
    assert engine.got == [("page", {"type": "msgs", "msgs": [chat, garbage]})]
    assert [(peer, reason) for peer, reason, _detail in refused] == [("page", "reserved_topic")]

    await handle("node", message)  # a node relays the node's own topics
    assert engine.got[-1] == ("node", message["m"])
    assert len(refused) == 1
