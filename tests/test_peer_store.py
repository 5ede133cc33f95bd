"""The peer store: verified records from peer exchange, capped, least trusted evicted first."""

from __future__ import annotations

from f0mesh.address_policy import AddressPolicy
from f0mesh.identity import Identity
from f0mesh.peer_record import PeerRecord
from f0mesh.peer_store import PeerStore, url_allowed


def _record(identity: Identity | None = None, url: str = "http://10.0.0.1:8700") -> PeerRecord:
    return PeerRecord.create(identity or Identity.generate(), url)


def test_capacity_evicts_least_trusted_then_least_recently_verified() -> None:
    scores: dict[str, float] = {}
    clock = iter(range(1000))
    evicted: list[str] = []
    store = PeerStore(3, scores=lambda: scores, on_evict=evicted.append, clock=lambda: float(next(clock)))
    trusted, old, young = _record(), _record(), _record()
    scores[trusted.peer_id] = 0.5
    for record in (trusted, old, young):
        assert store.add(record, "n")
    newcomer = _record()
    assert store.add(newcomer, "n")
    assert evicted == [old.peer_id]  # untrusted and verified longest ago
    assert len(store) == 3 and trusted.peer_id in store and old.peer_id not in store


def test_full_store_keeps_trusted_records_against_untrusted_newcomers() -> None:
    held = [_record() for _ in range(2)]
    scores = {r.peer_id: 0.3 for r in held}
    store = PeerStore(2, scores=lambda: scores)
    for record in held:
        store.add(record, "n")
    assert not store.add(_record(), "n")
    assert {r.peer_id for r in store.records()} == {r.peer_id for r in held}
    assert store.evicted == 0


def test_a_newer_record_replaces_an_older_one_and_stale_ones_are_ignored() -> None:
    identity = Identity.generate()
    store = PeerStore(4, scores=dict)
    first = PeerRecord(identity.peer_id, "http://a", 10.0, None, b"")
    newer = PeerRecord(identity.peer_id, "http://b", 20.0, None, b"")
    assert store.add(first, "n") and store.add(newer, "n")
    assert not store.add(first, "n")
    assert store.get(identity.peer_id) == newer and len(store) == 1


def test_url_allowed_follows_the_address_policy_without_resolving_names() -> None:
    policy = AddressPolicy(["10.0.0.0/8"])
    assert url_allowed(policy, "http://10.1.2.3:8700")
    assert not url_allowed(policy, "http://192.168.1.1:8700")
    assert not url_allowed(AddressPolicy(), "http://169.254.169.254/latest")  # never dialled
    assert url_allowed(policy, "https://peer.example.org")  # judged when dialled
    assert not url_allowed(policy, "ftp://10.0.0.1/")
    assert not url_allowed(policy, "http://user:pw@10.0.0.1/")
    assert not url_allowed(policy, "http://10.0.0.1:99999/")
