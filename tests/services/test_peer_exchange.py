"""Peer exchange: who may teach this node peers, what a message may carry, what is learned and sent."""

from __future__ import annotations

import pytest

from f0mesh.address_policy import AddressPolicy
from f0mesh.config import NodeConfig
from f0mesh.events import EventBus
from f0mesh.identity import Identity
from f0mesh.membership import Membership
from f0mesh.peer_book import PeerBook
from f0mesh.peer_exchange import PEX_MAX_RECORDS, PeerExchange
from f0mesh.peer_record import PeerRecord
from f0mesh.peer_store import PeerStore
from f0mesh.tasks import TaskSet
from f0mesh.trust import TrustService

from .kit import FakeLink, FakeLinks, open_store


@pytest.fixture
async def pex(tmp_path):
    identity = Identity.generate()
    config = NodeConfig(data_dir=tmp_path, admin_token="t" * 32, pex_min_trust=0.5)
    store = await open_store(tmp_path, identity.peer_id)
    tasks = TaskSet("test")
    trust = TrustService(identity.peer_id)
    book = PeerBook(identity.peer_id, store, tasks, kept=lambda pid: False)
    await book.load()
    wakes: list[int] = []
    violations: list[tuple[str, str]] = []
    teacher_identity = Identity.generate()
    teacher = FakeLink(teacher_identity.peer_id)
    exchange = PeerExchange(
        identity, config, book, PeerStore(128, scores=trust.cache.scores), trust, FakeLinks(teacher),
        Membership(EventBus()), AddressPolicy(), client=None, store=store, tasks=tasks,  # type: ignore[arg-type]
        wake=lambda: wakes.append(1), violated=lambda pid, what: violations.append((pid, what)),
    )  # fmt: skip
    exchange.test = (teacher, wakes, violations)  # type: ignore[attr-defined]
    exchange.teacher_identity = teacher_identity  # type: ignore[attr-defined]
    yield exchange
    await tasks.close(1.0)
    await book.close()
    await store.close()


def _records(n: int, url: str = "http://10.1.0.{}:8700") -> list[list]:
    """In the list form (of 1.0 nodes), which is still read."""
    return [PeerRecord.create(Identity.generate(), url.format(i + 1)).to_wire(legacy=True) for i in range(n)]


async def _audit(pex: PeerExchange) -> list[str]:
    await pex.tasks.close(1.0)
    return [row["reason"] for row in await pex.store.list_audit(event_name="rejected")]


async def test_a_stranger_teaches_nothing_and_leaves_an_audit_row(pex) -> None:
    teacher, wakes, _ = pex.test
    pex.on_ctl(teacher.peer_id, {"t": "pex", "records": _records(3)})
    assert pex.book.dial_candidates() == {} and wakes == []
    assert await _audit(pex) == ["pex_untrusted"]


async def test_a_pretrusted_or_trusted_peer_teaches_verified_allowed_records(pex) -> None:
    teacher, wakes, _ = pex.test
    pex.trust.add_pretrusted(teacher.peer_id)
    good = _records(3)
    forged = [*good[0][:4], bytes(64)]  # someone else's record with a bad signature
    metadata = _records(1, "http://169.254.169.{}:80")  # a cloud metadata address is never dialled
    own = PeerRecord.create(pex.identity, "http://10.9.9.9:8700").to_wire()
    pex.on_ctl(teacher.peer_id, {"t": "pex", "records": [*good, forged, *metadata, own]})
    assert set(pex.book.dial_candidates()) == {r[0] for r in good}
    assert wakes == [1]
    assert sorted(await _audit(pex)) == ["pex_address", "pex_record"]


@pytest.mark.parametrize("records", ["not a list", list(range(PEX_MAX_RECORDS + 1)), None])
async def test_a_malformed_message_is_a_violation_and_an_audit_row(pex, records) -> None:
    teacher, wakes, violations = pex.test
    pex.trust.add_pretrusted(teacher.peer_id)
    pex.on_ctl(teacher.peer_id, {"t": "pex", "records": records})
    assert violations == [(teacher.peer_id, "pex")] and wakes == []
    assert await _audit(pex) == ["pex_malformed"]


async def test_trust_must_reach_a_share_of_an_even_split(pex) -> None:
    teacher, _, _ = pex.test
    assert not pex.may_teach_peers(teacher.peer_id)
    pex.trust.set_opinion(teacher.peer_id, 1.0)  # the operator's own trust is enough
    assert pex.may_teach_peers(teacher.peer_id)
    pex.pex_min_trust = 0.0
    assert pex.may_teach_peers(Identity.generate().peer_id)


async def test_sent_records_are_own_first_then_the_freshest_not_the_receivers_own(pex) -> None:
    teacher, _, _ = pex.test
    pex.trust.add_pretrusted(teacher.peer_id)
    taught = _records(PEX_MAX_RECORDS)
    pex.on_ctl(teacher.peer_id, {"t": "pex", "records": taught})
    pex.records.add(PeerRecord.create(pex.teacher_identity, "http://10.2.0.1:8700"), "x")
    await pex.send(teacher.peer_id)
    [message] = teacher.sent
    sent = [PeerRecord.from_wire(r) for r in message["records"]]
    assert message["t"] == "pex" and len(sent) == PEX_MAX_RECORDS
    assert sent[0].peer_id == pex.identity.peer_id and teacher.peer_id not in {r.peer_id for r in sent}


async def test_a_1_0_neighbour_gets_the_list_form_and_a_1_1_one_the_map_with_tags_and_key(pex) -> None:
    teacher, _, _ = pex.test
    old = pex.links.add(FakeLink(Identity.generate().peer_id, remote_version=(1, 0)))
    pex.tags = {"role": "db"}
    await pex.send(old.peer_id)
    await pex.send(teacher.peer_id)
    [(legacy,)], [(current,)] = [m["records"] for m in old.sent], [m["records"] for m in teacher.sent]
    assert isinstance(legacy, list) and isinstance(current, dict)
    record = PeerRecord.from_wire(current)
    assert record.tags == {"role": "db"} and record.x25519 == pex.x25519
