"""Signaling through this node: which neighbours to try as relays, and what a hostile carrier earns."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from f0mesh.config import NodeConfig
from f0mesh.errors import NotFoundError, PolicyError
from f0mesh.identity import Identity
from f0mesh.mesh_signaling import MESH_OFFERS_ANSWERING, MESH_RELAY_TRIES, MeshSignaling
from f0mesh.metrics import NodeMetrics
from f0mesh.peer_book import PeerBook
from f0mesh.rtc.relay import envelope
from f0mesh.rtc.signaling import sign_description
from f0mesh.tasks import TaskSet

from .kit import FakeLink, FakeLinks


class SlowLinks(FakeLinks):
    """Answers relayed offers only when told to, so they pile up."""

    def __init__(self, *links: FakeLink) -> None:
        super().__init__(*links)
        self.go = asyncio.Event()

    async def handle_mesh_offer(self, desc: dict[str, Any]) -> dict[str, Any]:
        await self.go.wait()
        return {"type": "answer", "nonce": desc["nonce"]}


def _ids(n: int) -> list[str]:
    return [Identity.generate().peer_id for _ in range(n)]


@pytest.fixture
async def signaling(tmp_path):
    config = NodeConfig(data_dir=tmp_path, admin_token="t" * 32)
    own, carrier = _ids(2)
    tasks = TaskSet("test")
    links = SlowLinks(FakeLink(carrier))
    book = PeerBook(own, store=None, tasks=tasks, kept=lambda pid: False)  # type: ignore[arg-type]
    violations: list[tuple[str, str]] = []
    telemetry: dict[str, dict[str, Any]] = {}
    service = MeshSignaling(
        config, own, links, book, None, NodeMetrics(own), tasks,  # type: ignore[arg-type]
        telemetry=telemetry, violated=lambda pid, what: violations.append((pid, what)),
    )  # fmt: skip
    service.test = (carrier, links, violations, telemetry)  # type: ignore[attr-defined]
    yield service
    links.go.set()
    await tasks.close(1.0)


def _refused(service: MeshSignaling, reason: str) -> float:
    for line in service._metrics.render().decode().splitlines():
        if line.startswith(f'f0mesh_relay_refused_total{{reason="{reason}"}}'):
            return float(line.split()[-1])
    return 0.0


async def test_relays_named_by_the_peer_or_telemetry_come_first_and_are_bounded(signaling) -> None:
    target, named, listed, *others = _ids(3 + MESH_RELAY_TRIES)
    links: FakeLinks = signaling.test[1]
    for pid in (*others, named, listed, target):
        links.add(FakeLink(pid))
    signaling._book.learned(target, None)
    signaling._book.mark_private(target, True, (named,))
    signaling.test[3][listed] = {"links": [{"peer_id": target}]}
    relays = signaling.relays(target)
    assert relays[:2] == [named, listed] and target not in relays and len(relays) == MESH_RELAY_TRIES


async def test_a_forged_offer_is_a_violation_answered_with_a_refusal(signaling) -> None:
    carrier, links, violations, _ = signaling.test
    someone = Identity.generate().peer_id
    offer = {"type": "offer", "from": someone, "nonce": "n1"}
    await signaling.on_ctl(carrier, {"t": "sig", "to": signaling.own_id, "from": carrier, "desc": offer})
    await signaling._tasks.close(1.0)
    assert violations == [(carrier, "sig")] and _refused(signaling, "forged_source") == 1
    [reply] = links.get(carrier).sent
    assert reply["error"] == "forged_source" and reply["re"] == "n1" and reply["to"] == carrier


MALFORMED = [{"t": "sig"}, {"t": "sig", "to": 7, "from": []}, {"t": "sig", "to": "x" * 999}]


@pytest.mark.parametrize("message", MALFORMED)
async def test_malformed_envelopes_are_counted_and_charged_never_raised(signaling, message) -> None:
    carrier, links, violations, _ = signaling.test
    await signaling.on_ctl(carrier, message)
    assert violations == [(carrier, "sig")] and _refused(signaling, "malformed") == 1
    assert links.get(carrier).sent == []  # no nonce to refer to: nothing to answer


async def test_relayed_offers_answered_at_once_are_bounded(signaling) -> None:
    carrier, links, _, _ = signaling.test
    for i in range(MESH_OFFERS_ANSWERING + 1):
        offer = {"type": "offer", "from": carrier, "nonce": f"n{i}"}
        await signaling.on_ctl(carrier, {"t": "sig", "to": signaling.own_id, "from": carrier, "desc": offer})
    assert _refused(signaling, "rate_limited") == 1
    links.go.set()
    await signaling._tasks.close(2.0)
    sent = links.get(carrier).sent
    answers = [m for m in sent if "desc" in m]
    assert len(answers) == MESH_OFFERS_ANSWERING
    assert [m["error"] for m in sent if "error" in m] == ["rate_limited"]
    assert signaling._answering == 0


async def test_http_offers_are_refused_by_a_private_node_and_forwarding_needs_a_public_url(signaling) -> None:
    links: FakeLinks = signaling.test[1]
    assert await signaling.take_offer({"x": 1}) == {"type": "answer"} and links.offers == [{"x": 1}]
    signaling.private = True
    with pytest.raises(PolicyError, match="private"):
        await signaling.take_offer({"x": 2})
    with pytest.raises(NotFoundError):
        await signaling.forward("offer", Identity.generate().peer_id, {})


async def test_a_page_is_never_offered_as_a_relay(tmp_path) -> None:
    target, page, node, own = _ids(4)
    tasks = TaskSet("test")
    links = FakeLinks(FakeLink(page, browser=True), FakeLink(node))
    book = PeerBook(own, store=None, tasks=tasks, kept=lambda pid: False)  # type: ignore[arg-type]
    book.learned(target, None)
    book.mark(target, relays=[page])  # the page even names itself as the target's relay
    telemetry = {page: {"links": [{"peer_id": target}]}, node: {"links": [{"peer_id": target}]}}
    service = MeshSignaling(
        NodeConfig(data_dir=tmp_path, admin_token="t" * 32), own, links, book, None,  # type: ignore[arg-type]
        NodeMetrics(own), tasks, telemetry=telemetry, violated=lambda pid, what: None,
    )  # fmt: skip
    assert service.relays(target) == [node]
    await tasks.close(1.0)


async def test_an_offer_for_a_peer_two_hops_away_goes_to_the_neighbour_nearest_it(signaling) -> None:
    """This node is b in a - b - c - d: c's telemetry lists d; the answer goes back to a."""
    _, links, violations, telemetry = signaling.test
    a, d = Identity.generate(), Identity.generate()
    far, c = _ids(2)
    for pid in (a.peer_id, far, c):
        links.add(FakeLink(pid))
    telemetry[c] = {"links": [{"peer_id": d.peer_id}]}
    telemetry[far] = {"links": [{"peer_id": "someone"}]}
    offer = envelope(d.peer_id, a.peer_id, sign_description(a, "offer", "v=0\r\n", d.peer_id, None).to_json())
    await signaling.on_ctl(a.peer_id, offer)
    assert links.get(c).sent == [{**offer, "via": [signaling.own_id]}] and links.get(far).sent == []
    nonce = offer["desc"]["nonce"]
    answer = sign_description(d, "answer", "v=0\r\n", a.peer_id, None, offer_nonce=nonce).to_json()
    await signaling.on_ctl(c, envelope(a.peer_id, d.peer_id, answer))
    assert links.get(a.peer_id).sent == [envelope(a.peer_id, d.peer_id, answer)] and violations == []


async def test_an_offer_out_of_hops_is_refused_back_along_its_path(signaling) -> None:
    """The offer already passed two relays (b, then this node's carrier c); this third relay may
    only hand it to the target itself, so it refuses, addressed to the origin, over the carrier."""
    _, links, violations, telemetry = signaling.test
    a, d = Identity.generate(), Identity.generate()
    b, c, e = _ids(3)
    for pid in (c, e):
        links.add(FakeLink(pid))
    telemetry[e] = {"links": [{"peer_id": d.peer_id}]}
    desc = sign_description(a, "offer", "v=0\r\n", d.peer_id, None).to_json()
    offer = {**envelope(d.peer_id, a.peer_id, desc), "via": [b, c]}
    await signaling.on_ctl(c, offer)
    assert links.get(e).sent == [] and violations == []
    await signaling._tasks.close(1.0)
    [reply] = links.get(c).sent
    assert reply["error"] == "no_route" and reply["to"] == a.peer_id and reply["re"] == desc["nonce"]
