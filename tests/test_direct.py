"""Direct messages and queries between in-process services on a fake mesh (frames pass the wire codec)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from f0mesh import wire
from f0mesh.direct import MAX_BODY, MAX_FRAME_CT, DirectService, Received, public_bytes, seal, x25519_key
from f0mesh.errors import PeerError
from f0mesh.identity import Identity
from f0mesh.query import Queries


class Mesh:
    """Services joined by undirected edges; a frame is encoded and decoded as on a link."""

    def __init__(self, count: int, edges: list[tuple[int, int]], *, hints: bool = False) -> None:
        self.blocked: set[str] = set()
        self.ids = [Identity.generate() for _ in range(count)]
        self.adjacent: dict[str, set[str]] = {i.peer_id: set() for i in self.ids}
        for a, b in edges:
            self.adjacent[self.ids[a].peer_id].add(self.ids[b].peer_id)
            self.adjacent[self.ids[b].peer_id].add(self.ids[a].peer_id)
        self.down: set[str] = set()
        self.dropped: list[tuple[str, str, str, str]] = []  # (at, neighbour, reason, detail)
        self.inbox: dict[str, list[Received]] = {i.peer_id: [] for i in self.ids}
        self.services: dict[str, DirectService] = {}
        for identity in self.ids:
            me = identity.peer_id
            service = DirectService(
                identity,
                neighbours=lambda me=me: sorted(self.adjacent[me]),
                send=lambda peer, frame, me=me: self.deliver(me, peer, frame),
                key_of=lambda peer: self.services[peer].public_key if peer in self.services else None,
                dropped=lambda nb, reason, detail, me=me: self.dropped.append((me, nb, reason, detail)),
                blocked=self.blocked.__contains__,
                toward=lambda to, me=me: (
                    [p for p in self.adjacent[me] if to in self.adjacent[p]] if hints else []
                ),
            )
            service.handler("msg", self.inbox[me].append)
            self.services[me] = service
        self.queries = {
            pid: Queries(s, self_info=lambda pid=pid: {"peer_id": pid}) for pid, s in self.services.items()
        }

    async def deliver(self, sender: str, peer: str, frame: dict[str, Any]) -> None:
        if peer in self.down:
            return
        await self.services[peer].on_frame(sender, wire.decode(wire.encode(frame)))

    def peer(self, index: int) -> str:
        return self.ids[index].peer_id


async def test_a_message_two_hops_away_is_read_only_by_its_addressee() -> None:
    mesh = Mesh(4, [(0, 1), (1, 2), (1, 3)])
    a, b, c, d = (mesh.peer(i) for i in range(4))
    await mesh.services[a].send(c, "msg", b"secret")
    assert [(r.sender, r.body) for r in mesh.inbox[c]] == [(a, b"secret")]
    assert mesh.inbox[b] == [] and mesh.inbox[d] == []
    assert mesh.services[b].relayed == 1 and mesh.services[b].delivered == 0
    assert mesh.services[d].relayed == 0  # b had a link to c: the frame went there only
    assert mesh.dropped == []


async def test_a_flood_stops_at_its_hop_budget_and_each_copy_is_read_once() -> None:
    ring = [(i, (i + 1) % 10) for i in range(10)]
    mesh = Mesh(10, ring)
    await mesh.services[mesh.peer(0)].send(mesh.peer(5), "msg", b"x")  # 5 hops each way round
    assert len(mesh.inbox[mesh.peer(5)]) == 1
    far = Mesh(10, [(i, i + 1) for i in range(9)])
    await far.services[far.peer(0)].send(far.peer(9), "msg", b"x")  # 9 hops: past MAX_HOPS
    assert far.inbox[far.peer(9)] == []


async def test_forged_replayed_oversized_and_misdirected_frames_are_dropped_with_a_reason() -> None:
    mesh = Mesh(3, [(0, 1), (1, 2)])
    a, b, c = (mesh.peer(i) for i in range(3))
    frame = seal(mesh.ids[0], c, mesh.services[c].public_key, "msg", b"hello")
    tampered = {**frame, "ct": frame["ct"][:-1] + bytes([frame["ct"][-1] ^ 1])}
    await mesh.services[c].on_frame(b, tampered)
    readdressed = {**frame, "to": b}  # a relay cannot point it at another peer
    await mesh.services[b].on_frame(a, readdressed)
    oversized = {**frame, "id": b"o" * 16, "ct": b"x" * (MAX_FRAME_CT + 1)}
    await mesh.services[c].on_frame(b, oversized)
    await mesh.services[c].on_frame(b, {**frame, "id": b"h" * 16, "hops": 99})
    # a stranger may write to c, but only as itself: the sender is whoever signed
    impostor = Identity.generate()
    forged = seal(impostor, c, mesh.services[c].public_key, "msg", b"hello")
    await mesh.services[c].on_frame(b, forged)
    await mesh.services[c].on_frame(b, frame)
    await mesh.services[c].on_frame(b, frame)  # the same frame again is not read twice
    await mesh.services[c].on_frame(a, {**frame, "hops": 2})
    reasons = [(at, reason) for at, _, reason, _ in mesh.dropped]
    assert (c, "direct_forged") in reasons and (b, "direct_forged") in reasons
    assert (c, "direct_too_large") in reasons and (c, "direct_malformed") in reasons
    assert [(r.sender, r.body) for r in mesh.inbox[c]] == [(impostor.peer_id, b"hello"), (a, b"hello")]
    mesh.blocked.add(a)
    await mesh.services[a].send(c, "msg", b"after the block")
    assert len(mesh.inbox[c]) == 2 and (c, "direct_blocked") in [(at, r) for at, _, r, _ in mesh.dropped]
    with pytest.raises(PeerError, match="at most"):
        await mesh.services[a].send(c, "msg", b"x" * (MAX_BODY + 1))
    with pytest.raises(PeerError) as unknown:
        await mesh.services[a].send(Identity.generate().peer_id, "msg", b"x")
    assert unknown.value.code == "unknown_peer"


async def test_a_query_to_six_of_eight_gathers_five_answers_and_names_the_silent_one() -> None:
    mesh = Mesh(8, [(i, (i + 1) % 8) for i in range(8)] + [(0, 4)])
    asker = mesh.peer(0)
    asked_by: list[str] = []
    for index in range(8):

        async def echo(payload: Any, who: str, index: int = index) -> Any:
            asked_by.append(mesh.peer(index))
            return {"echo": payload, "index": index}

        mesh.queries[mesh.peer(index)].handler("echo", echo)
    targets = [mesh.peer(i) for i in (2, 3, 5, 6, 7, 1)]
    silent = mesh.peer(1)
    mesh.down.add(silent)  # a node that is gone: nothing reaches it through its own link

    result = await mesh.queries[asker].ask("echo", {"q": 1}, targets, timeout=1.0)

    assert sorted(a["peer_id"] for a in result["answers"]) == sorted(targets[:5])
    assert all(a["answer"]["echo"] == {"q": 1} for a in result["answers"])
    assert result["no_answer"] == [silent] and result["no_ack"] == [silent]
    assert sorted(result["acks"]) == sorted(targets[:5])
    assert sorted(asked_by) == sorted(targets[:5])  # 0 and 4 were not asked


async def test_handler_errors_and_unknown_names_come_back_as_errors() -> None:
    mesh = Mesh(2, [(0, 1)])
    a, b = mesh.peer(0), mesh.peer(1)

    async def broken(payload: Any, who: str) -> Any:
        raise RuntimeError("no")

    mesh.queries[b].handler("broken", broken)
    result = await asyncio.wait_for(mesh.queries[a].ask("broken", None, [b], timeout=2.0), 5)
    assert result["errors"] == [{"peer_id": b, "error": "RuntimeError"}] and result["acks"] == [b]
    missing = await mesh.queries[a].ask("nobody-handles-this", None, [b], timeout=2.0)
    assert missing["errors"][0]["error"].startswith("no_handler")
    pinged = await mesh.queries[a].ask("f0mesh.ping", None, [a, b], timeout=2.0)
    assert sorted(x["answer"]["peer_id"] for x in pinged["answers"]) == sorted([a, b])


async def test_frames_go_toward_a_neighbour_linked_to_the_addressee_and_made_up_addressees_die() -> None:
    star = [(0, 1), (0, 2), (0, 3), (3, 4), (1, 5), (2, 5)]
    mesh = Mesh(6, star, hints=True)
    await mesh.services[mesh.peer(0)].send(mesh.peer(4), "msg", b"x")
    assert len(mesh.inbox[mesh.peer(4)]) == 1
    assert [mesh.services[mesh.peer(i)].relayed for i in (1, 2, 3)] == [0, 0, 1]  # only 3 links to 4

    stranger = Identity.generate()
    lost = seal(
        mesh.ids[0], stranger.peer_id, public_bytes(x25519_key(stranger)), "msg", b"x"
    )  # known nowhere
    await mesh.services[mesh.peer(1)].on_frame(mesh.peer(0), lost)
    assert mesh.services[mesh.peer(1)].relayed == 0 and mesh.services[mesh.peer(5)].relayed == 0
    assert (mesh.peer(1), mesh.peer(0), "direct_no_route") in [d[:3] for d in mesh.dropped]
