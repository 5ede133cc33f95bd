"""The link delegate: one blocked-peer check before the ctl router, and link changes fanned out."""

from __future__ import annotations

import time
from types import SimpleNamespace
from typing import Any

import pytest

from f0mesh.ctl import CtlRouter
from f0mesh.events import EventBus
from f0mesh.link_events import Bound, LinkEvents, LinkValue
from f0mesh.membership import Membership
from f0mesh.metrics import NodeMetrics
from f0mesh.peer_book import PeerBook
from f0mesh.rtc.link import LinkState
from f0mesh.tasks import TaskSet

from .kit import FakeLink, FakeLinks, open_store

ASYNC = frozenset({"send", "on_neighbour_up", "on_neighbour_down"})


class Recorder:
    """Stands in for any part: records every call by name (a coroutine for the async ones)."""

    def __init__(self, calls: list[tuple[str, Any]]) -> None:
        self._calls = calls

    def __getattr__(self, name: str) -> Any:
        def record(*args: Any, **kwargs: Any) -> Any:
            self._calls.append((name, args[0] if args else None))

            async def done() -> None:
                return None

            return done() if name in ASYNC else None

        return record


@pytest.fixture
async def glue(tmp_path):
    store = await open_store(tmp_path, "me")
    tasks = TaskSet("test")
    book = PeerBook("me", store, tasks, kept=lambda pid: False)
    events = EventBus()
    router = CtlRouter()
    glue = LinkEvents(store, book, NodeMetrics("me"), events, Membership(events), router, tasks)
    calls: list[tuple[str, Any]] = []
    links = FakeLinks()
    glue.bind(Bound(links, *(Recorder(calls) for _ in range(8))))  # type: ignore[arg-type]
    glue.test = (calls, links, router, store)  # type: ignore[attr-defined]
    yield glue
    await tasks.close(1.0)
    await glue.close()
    await book.close()
    await store.close()


async def test_a_blocked_peers_ctl_messages_never_reach_a_handler(glue) -> None:
    _, _, router, _ = glue.test
    got: list[tuple[str, str]] = []
    router.register("pex", lambda peer, message: got.append((peer, message["t"])))
    await glue.book.set_blocked("bad", True)
    await glue.link_message(FakeLink("bad"), {"t": "pex"})
    await glue.link_message(FakeLink("good"), {"t": "pex"})
    await glue.link_message(FakeLink("good"), {"t": "nobody-registered"})
    assert got == [("good", "pex")]


async def test_an_open_link_reaches_every_part_and_a_closed_one_is_stored(glue) -> None:
    calls, links, _, store = glue.test
    link = links.add(FakeLink("P1", link_id="L1"))
    glue.link_state_changed(link)
    await glue.tasks.close(1.0)
    names = [name for name, _ in calls]
    for expected in ("add", "send", "on_neighbour_up", "on_link_open", "poke", "schedule"):
        assert expected in names, (expected, names)
    assert "P1" in glue.book and glue.book._peers["P1"]["linked"]
    link.state, link.reason = LinkState.CLOSED, "done"
    glue.unbind()  # the node is stopping: rows and events only
    calls.clear()
    glue.link_state_changed(link)
    assert calls == []
    await glue.close()
    [row] = await store.list_links(peer_id="P1")
    assert row["state"] == "closed" and row["reason"] == "done"


def test_links_are_pruned_untrusted_first_then_unhealthy_then_young() -> None:
    """What an eclipse meets: Sybils that filled the slots arrive untrusted and go first, however new
    or healthy; among equals a bad path goes before a good one, and a young link before an old one."""
    now = time.time()
    honest = FakeLink("honest", link_id="L1", opened_at=now - 5)  # young, trusted, health unknown
    sybil_old = FakeLink("sybil-1", link_id="L2", opened_at=now - 3600)
    sybil_good = FakeLink("sybil-2", link_id="L3", opened_at=now - 60)
    sybil_bad = FakeLink("sybil-3", link_id="L4", opened_at=now - 60)
    scores = {"honest": 0.7, "sybil-1": 0.1, "sybil-2": 0.1, "sybil-3": 0.1}
    good, bad = SimpleNamespace(health="good"), SimpleNamespace(health="bad")
    samples = {"L2": good, "L3": good, "L4": bad}
    value = LinkValue(lambda: scores, samples)  # type: ignore[arg-type]
    order = sorted([honest, sybil_old, sybil_good, sybil_bad], key=value)
    assert [link.peer_id for link in order] == ["sybil-3", "sybil-2", "sybil-1", "honest"]
