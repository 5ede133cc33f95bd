"""A local write is answered only once it is saved (issue 18, class 3): a refused save leaves nothing
behind, in memory or on the wire; a save slower than the bound answers 503 and still lands."""

from __future__ import annotations

import asyncio

import pytest
from gossip.meshkit import wait_until

from f0mesh.crdt import HLC, LWWMap
from f0mesh.errors import StorageFullError, StoreUnavailableError
from f0mesh.identity import Identity
from f0mesh.state import ListChange, MapChange

from .kit import Clock, MemoryStateStore, gossiped, solo


class FullDisk(MemoryStateStore):
    """Refuses every save while ``full``, as the Store does on a full disk; a gate holds saves back."""

    def __init__(self) -> None:
        super().__init__()
        self.full = False
        self.gate = asyncio.Event()
        self.gate.set()

    async def put_state(self, name: str, kind: str, data: bytes) -> None:
        await self.gate.wait()
        if self.full:
            raise StorageFullError("not stored: the store's disk is full")
        await super().put_state(name, kind, data)


def saved(store: MemoryStateStore, name: str) -> dict:
    return dict(LWWMap.from_bytes(store.rows[f"doc/{name}"][1]).items())


async def test_a_refused_save_changes_nothing_and_the_next_write_goes_through() -> None:
    store, clock = FullDisk(), Clock()
    state = solo(store, clock)
    await state.start()
    await state.replace("cfg", "map", {"a": 1})
    await state.update("log", ListChange(append=["one"]))
    before = {name: state.view(name) for name in ("cfg", "log")}
    published = len(state._gossip.published)

    store.full = True
    with pytest.raises(StorageFullError):
        await state.replace("cfg", "map", {"a": 2, "b": 3})
    with pytest.raises(StorageFullError):
        await state.update("log", ListChange(append=["two"]))
    with pytest.raises(StorageFullError):
        await state.update("new", MapChange(set={"x": 1}))
    assert {name: state.view(name) for name in ("cfg", "log")} == before
    assert state.get("new") is None
    await state.flush()
    assert len(state._gossip.published) == published  # nothing refused went out either

    store.full = False  # space is back: no restart, the next write is saved and spread
    view = await state.update("log", ListChange(append=["two"]))
    assert view["value"] == ["one", "two"]
    await state.replace("cfg", "map", {"a": 2})
    assert saved(store, "cfg") == {"a": 2}
    again = solo(store, clock)
    await again.start()
    assert again.view("log")["value"] == ["one", "two"]
    await again.stop()
    await state.stop()


async def test_a_save_slower_than_the_bound_answers_503_and_lands_later() -> None:
    store, clock = FullDisk(), Clock()
    state = solo(store, clock, save_timeout_s=0.05)
    await state.start()
    store.gate.clear()
    with pytest.raises(StoreUnavailableError) as refused:
        await state.replace("cfg", "map", {"a": 1})
    assert refused.value.status == 503
    assert state.get("cfg") is None  # not saved yet, so not shown
    store.gate.set()
    await wait_until(lambda: state.get("cfg") is not None, 5, "the late save adopted")
    assert state.view("cfg")["value"] == {"a": 1} and saved(store, "cfg") == {"a": 1}
    await state.stop()


async def test_a_delta_merged_while_a_write_is_saved_is_kept_and_saved_after() -> None:
    store, clock = FullDisk(), Clock()
    state = solo(store, clock)
    await state.start()
    await state.replace("cfg", "map", {"a": 1})
    author = Identity.generate()
    await state.set_writers("cfg", [author.peer_id], [])
    store.gate.clear()
    write = asyncio.create_task(state.replace("cfg", "map", {"a": 1, "mine": True}))
    await wait_until(lambda: state._flush_lock.locked(), 5, "the save under way")
    theirs = LWWMap("elsewhere")
    theirs.set("theirs", True, HLC(author.peer_id, clock=lambda: int(clock() * 1000)).now())
    state.on_gossip(gossiped("cfg", theirs, author))
    store.gate.set()
    view = await asyncio.wait_for(write, 5)
    assert view["value"] == {"a": 1, "mine": True, "theirs": True}
    await wait_until(lambda: saved(store, "cfg") == view["value"], 5, "the merged delta saved too")
    await state.stop()
