"""The trust keeper: opinions saved and reloaded, published only with a link, others' applied."""

from __future__ import annotations

import time
from types import SimpleNamespace

import pytest

from f0mesh.identity import Identity
from f0mesh.trust import Event, TrustService
from f0mesh.trust_keeper import TRUST_TOPIC, TrustKeeper, record_violation

from .kit import FakeGossip, open_store


@pytest.fixture
async def keeper(tmp_path):
    own = Identity.generate().peer_id
    store = await open_store(tmp_path, own)
    linked = [False]
    keeper = TrustKeeper(TrustService(own), store, FakeGossip(), linked=lambda: linked[0])  # type: ignore[arg-type]
    keeper.test_linked = linked  # type: ignore[attr-defined]
    yield keeper
    await store.close()


async def test_opinions_survive_a_restart(keeper) -> None:
    peer = Identity.generate().peer_id
    await keeper.set_trust(peer, 0.8)
    again = TrustService(keeper.trust.self_id)
    await TrustKeeper.load(again, keeper._store)
    assert again.opinions == {peer: 0.8}


async def test_opinions_are_published_once_a_link_is_open_and_not_again_unchanged(keeper) -> None:
    gossip = keeper._gossip
    keeper.trust.set_opinion(Identity.generate().peer_id, 1.0)
    await keeper.step()
    assert gossip.published == []  # no neighbour would hear it: kept for later
    keeper.test_linked[0] = True
    await keeper.step()
    await keeper.step()
    [(topic, payload)] = gossip.published
    assert topic == TRUST_TOPIC and list(payload["edges"].values()) == [1.0]


async def test_published_opinions_of_others_enter_the_graph_and_own_ones_do_not(keeper) -> None:
    other, target = Identity.generate().peer_id, Identity.generate().peer_id
    payload = {"version": 1, "edges": {target: 0.5}}
    keeper._gossip.deliver(other, TRUST_TOPIC, payload, time.time())
    own = {"version": 2, "edges": {other: 1.0}}
    keeper._gossip.deliver(keeper.trust.self_id, TRUST_TOPIC, own, time.time())
    edges = {(e["from"], e["to"]) for e in keeper.view()["edges"]}
    assert edges == {(other, target)}


def test_a_clock_skew_counts_as_a_replay_and_anything_else_as_malformed() -> None:
    seen: list[tuple[str, Event]] = []
    trust = SimpleNamespace(record=lambda peer, event: seen.append((peer, event)))
    record_violation(trust, "p", "clock_skew")  # type: ignore[arg-type]
    record_violation(trust, "p", "undecodable")  # type: ignore[arg-type]
    assert seen == [("p", Event.REPLAY), ("p", Event.MALFORMED)]
