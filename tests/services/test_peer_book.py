"""The peer book: write-behind coalescing, dial candidates, the block list, strangers and evictions."""

from __future__ import annotations

import asyncio

import pytest

from f0mesh import peer_book
from f0mesh.identity import Identity
from f0mesh.peer_book import PeerBook
from f0mesh.state import PeerInfo
from f0mesh.tasks import TaskSet

from .kit import open_store


def _ids(n: int) -> list[str]:
    return [Identity.generate().peer_id for _ in range(n)]


@pytest.fixture
async def book(tmp_path, monkeypatch):
    monkeypatch.setattr(peer_book, "PEER_FLUSH_S", 0.01)
    own = Identity.generate().peer_id
    store = await open_store(tmp_path, own)
    writes: list[int] = []
    upsert = store.upsert_peers
    written = asyncio.Event()

    async def counted(rows):
        rows = list(rows)
        writes.append(len(rows))
        await upsert(rows)
        written.set()  # the flush records what it wrote before anyone waiting runs

    monkeypatch.setattr(store, "upsert_peers", counted)
    kept: set[str] = set()
    tasks = TaskSet("test")
    book = PeerBook(own, store, tasks, kept=kept.__contains__)
    await book.load()
    book.test_writes, book.test_kept, book.test_store = writes, kept, store  # type: ignore[attr-defined]
    book.test_written = written  # type: ignore[attr-defined]
    yield book
    await book.close()
    await tasks.close(1.0)
    await store.close()


async def test_a_burst_of_learning_is_one_write_and_rereports_within_the_resolution_are_none(book) -> None:
    peers = _ids(20)
    for pid in peers:
        book.learned(pid, f"http://10.0.0.1:{8000 + peers.index(pid)}", seen=1000.0)
    await asyncio.wait_for(book.test_written.wait(), 5)  # written by the flush timer, no call here
    assert book.test_writes == [20]
    for pid in peers:  # every peer re-reported a few seconds later: below PEER_SEEN_RESOLUTION_S
        book.learned(pid, None, seen=1010.0)
    await book.flush()
    assert book.test_writes == [20]
    book.learned(peers[0], None, seen=1000.0 + peer_book.PEER_SEEN_RESOLUTION_S)
    await book.flush()
    assert book.test_writes == [20, 1]
    rows = {r["peer_id"]: r for r in await book.test_store.list_peers()}
    assert set(rows) == set(peers) and rows[peers[0]]["last_seen"] == 1030.0


async def test_dial_candidates_leave_out_blocked_private_left_urlless_and_self(book) -> None:
    good, blocked, private, left, urlless = _ids(5)
    for pid in (good, blocked, private, left):
        book.learned(pid, "http://10.0.0.2:8700")
    book.learned(urlless, None)
    book.learned(book.own_id, "http://10.0.0.3:8700")
    await book.set_blocked(blocked, True)
    book.mark_private(private, True, ("relay",))
    book.from_registry(PeerInfo(left, "http://10.0.0.4:8700", None, 5.0, "left"))
    assert book.dial_candidates() == {good: "http://10.0.0.2:8700"}
    assert book.blocked(blocked) and not book.blocked(good)
    assert book.url(private) is None and book.url(good) == "http://10.0.0.2:8700"
    assert book.relays(private) == {"relay"}
    assert (await book.test_store.get_peer(blocked))["blocked"]


async def test_strangers_are_the_unkept_unlinked_and_unheard_and_forgetting_deletes_their_rows(book) -> None:
    stranger, linked, pinned, blocked, kept, live, fresh = _ids(7)
    for pid in (stranger, linked, pinned, blocked, kept, live):
        book.learned(pid, "http://10.0.0.5:8700", seen=100.0)
    book.learned(fresh, "http://10.0.0.5:8701", seen=10_000.0)
    book.mark(linked, linked=True)
    book.mark(pinned, pinned=True)
    await book.set_blocked(blocked, True)
    book.test_kept.add(kept)
    await book.flush()
    assert book.strangers(1000.0, live=lambda pid: pid == live) == [stranger]
    book.forget(stranger)
    await book.flush()
    assert stranger not in book
    assert stranger not in {r["peer_id"] for r in await book.test_store.list_peers()}
    book.evicted(kept)  # the peer store let go, but another part keeps it
    book.evicted(fresh)  # known only from that record: forgotten
    assert kept in book and fresh not in book
