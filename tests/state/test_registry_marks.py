"""Issue 20: in the peer registry a peer's own entry is written by that peer alone; the liveness marks of
others are a field of their own, and the URL always comes from the newer of the peer's signed records."""

from __future__ import annotations

import time
from types import SimpleNamespace

import pytest

from f0mesh import peer_record
from f0mesh.crdt import HLC, LWWMap
from f0mesh.identity import Identity
from f0mesh.peer_record import PeerRecord
from f0mesh.state.peers import ALIVE, GONE, PEERS_DOC, make_entry, mark_key
from f0mesh.state.sync import gossip_payload

from .kit import Clock, MemoryStateStore, signed, solo


def _deliver(state, name: str, delta: LWWMap, author: Identity) -> None:
    signed(name, delta, author)
    payload = gossip_payload(name, "map", delta.to_bytes())
    state.on_gossip(SimpleNamespace(origin=author.peer_id, payload=payload))


async def test_another_writer_replaying_a_peers_older_record_moves_neither_its_url_nor_its_entry(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock, me, subject, other = Clock(), Identity.generate(), Identity.generate(), Identity.generate()
    violations: list[tuple[str, str]] = []
    state = solo(MemoryStateStore(), clock, me, on_violation=lambda peer, why: violations.append((peer, why)))
    monkeypatch.setattr(peer_record.time, "time", lambda: clock() - 600)
    old = PeerRecord.create(subject, "http://10.0.0.66:8700")
    monkeypatch.setattr(peer_record.time, "time", time.time)
    new = PeerRecord.create(subject, "http://10.0.0.7:8700")
    await state.start()
    try:
        own = LWWMap(subject.peer_id)
        own.set(subject.peer_id, make_entry(new, ALIVE, clock()), HLC(subject.peer_id).now())
        _deliver(state, PEERS_DOC, own, subject)

        later = HLC(other.peer_id, clock=lambda: int(clock() * 1000) + 1000)
        replay = LWWMap(other.peer_id)
        replay.set(subject.peer_id, make_entry(old, ALIVE, clock()), later.now())
        _deliver(state, PEERS_DOC, replay, other)
        entry = state.view(PEERS_DOC)["value"][subject.peer_id]
        assert entry["record"][1] == new.url  # the subject's own entry, as it wrote it
        assert state.dropped["registry_legacy"] == 1 and violations == []

        mark = LWWMap(other.peer_id)
        mark.set(mark_key(subject.peer_id), make_entry(old, GONE, clock()), later.now())
        _deliver(state, PEERS_DOC, mark, other)
        info = state._peers.info(subject.peer_id, clock())
        assert (info.url, info.status) == (new.url, GONE)  # the mark tells liveness, never the URL
        assert state.registered(subject.peer_id) and not state.registered(other.peer_id)

        refute = LWWMap(subject.peer_id)
        refute.merge(own)
        refute.set(
            subject.peer_id,
            make_entry(new, ALIVE, clock()),
            HLC(subject.peer_id, clock=lambda: int(clock() * 1000) + 2000).now(),
        )
        _deliver(state, PEERS_DOC, refute.delta_since(own.version()), subject)
        assert state._peers.info(subject.peer_id, clock()).status == ALIVE
    finally:
        await state.stop()
