"""Messaging: direct frames only on 1.1 links that are not pages, keys and tags from verified records."""

from __future__ import annotations

from f0mesh.config import NodeConfig
from f0mesh.direct import public_bytes, x25519_key
from f0mesh.events import EventBus
from f0mesh.identity import Identity
from f0mesh.membership import Membership
from f0mesh.messaging import Messaging
from f0mesh.peer_book import PeerBook
from f0mesh.state import PeerInfo
from f0mesh.tasks import TaskSet

from .kit import FakeLink, FakeLinks, open_store


async def test_frames_go_to_1_1_peers_only_and_queries_pick_targets_by_verified_tags(tmp_path) -> None:
    me = Identity.generate()
    store = await open_store(tmp_path, me.peer_id)
    tasks = TaskSet("test")
    events = EventBus()
    book = PeerBook(me.peer_id, store, tasks, Membership(events), kept=lambda pid: False)
    new, old, page, left = (Identity.generate().peer_id for _ in range(4))
    links = FakeLinks(
        FakeLink(new), FakeLink(old, remote_version=(1, 0)), FakeLink(page, browser=True)
    )  # fmt: skip
    key = public_bytes(x25519_key(Identity.generate()))
    for peer, status, role in ((new, "alive", "db"), (old, "alive", "cache"), (left, "left", "db")):
        book.from_registry(PeerInfo(peer, "http://10.0.0.1:8700", None, 1.0, status, tags={"role": role}))
        book.note_keys(peer, {"role": role}, key)
    sent: list[str] = []

    async def send(peer_id: str, message: dict) -> None:
        sent.append(peer_id)

    config = NodeConfig(data_dir=tmp_path, admin_token="t" * 32, tags={"role": "db"})
    messaging = Messaging(
        me, config, book, links, events, tasks, telemetry={}, send=send,  # type: ignore[arg-type]
        refuse=lambda *row: None, violated=lambda *what: None,
    )  # fmt: skip
    try:
        assert messaging._neighbours() == [new]
        await messaging.send(old, {"hello": 1})  # no link to it speaks 1.1: flooded over the one that does
        assert sent == [new]
        assert set(messaging.targets(None, None)) == {me.peer_id, new, old}  # not the one that left
        assert set(messaging.targets(None, {"role": "db"})) == {me.peer_id, new}
        assert messaging.targets([old, page], {"role": "cache"}) == [old]
    finally:
        await tasks.close(1.0)
        await book.close()
        await store.close()
