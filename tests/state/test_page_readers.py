"""Issue 26: a web page reads the documents it names and nothing else, and never writes.

One replica on its own (tests/state/kit.py); the page is a linked peer the replica is told is a page,
and what the replica sends it is collected as the link would carry it.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

from f0mesh.crdt import HLCTimestamp, LWWMap, VectorClock
from f0mesh.identity import Identity
from f0mesh.peer_record import PeerRecord
from f0mesh.state import MapChange, ReplicatedState
from f0mesh.state.peers import PEERS_DOC
from f0mesh.state.readers import REQUEST_BURST
from f0mesh.state.sync import Reassembler, delta_pages

from .kit import PARAMS, Clock, FakeGossip, MemoryStateStore, signed

PAGE = Identity.generate().peer_id
NODE = Identity.generate().peer_id


class Replica:
    def __init__(self) -> None:
        self.identity = Identity.generate()
        self.sent: list[tuple[str, dict[str, Any]]] = []
        self.audited: list[tuple[str, str, str]] = []
        self.violations: list[tuple[str, str]] = []
        clock = Clock()
        self.state = ReplicatedState(
            self.identity.peer_id,
            MemoryStateStore(),
            FakeGossip(self.identity.peer_id, clock),
            send=self._send,
            neighbours=list,
            own_record=lambda: PeerRecord.create(self.identity, "http://10.0.0.9:8700"),
            sign=self.identity.sign,
            on_violation=lambda peer, why: self.violations.append((peer, why)),
            audit=lambda peer, why, detail: self.audited.append((peer, why, detail)),
            is_page=lambda peer_id: peer_id == PAGE,
            params=replace(PARAMS, flush_delay_s=0.001),
            clock=clock,
        )

    async def _send(self, peer_id: str, message: dict[str, Any]) -> None:
        self.sent.append((peer_id, message))

    def deltas(self, peer_id: str) -> list[LWWMap]:
        joined = Reassembler(1 << 20)
        out = []
        for to, message in self.sent:
            if to == peer_id and message.get("op") == "delta":
                whole = joined.feed(to, message)
                if whole is not None:
                    out.append(LWWMap.from_bytes(whole[2]))
        return out


def ask(*docs: tuple[str, str, dict[str, int]]) -> dict[str, Any]:
    return {"t": "state", "op": "versions", "reply": False, "docs": [list(d) for d in docs]}


async def settle(replica: Replica) -> None:
    await replica.state.flush()
    await replica.state._tasks.close(1.0)  # the pushes the flush spawned


async def test_a_page_gets_the_documents_it_names_then_their_changes_and_nothing_else() -> None:
    replica = Replica()
    await replica.state.start()
    try:
        await replica.state.update("cfg", MapChange(set={"colour": "red"}))
        await replica.state.update("other", MapChange(set={"secret": 1}))
        await replica.state.on_ctl(PAGE, ask(("cfg", "map", {})))
        [first] = replica.deltas(PAGE)
        assert first.to_dict() == {"colour": "red"}

        me = replica.identity.peer_id
        version = replica.state.get("cfg").crdt.version()
        await replica.state.update("cfg", MapChange(set={"size": 3}))
        await replica.state.update("other", MapChange(set={"secret": 2}))
        await settle(replica)
        _first, pushed = replica.deltas(PAGE)
        assert pushed.to_dict() == {"size": 3}  # only what the page lacks
        assert list(pushed.op_ids()) == [(me, version.get(me) + 1)]
        # nothing but the named document, and never an anti-entropy round or a versions message
        assert {m["name"] for to, m in replica.sent if to == PAGE} == {"cfg"}
        assert all(m["op"] == "delta" for to, m in replica.sent if to == PAGE)
    finally:
        await replica.state.stop()


async def test_a_page_cannot_write_nor_read_the_registry_and_is_rate_limited() -> None:
    replica = Replica()
    await replica.state.start()
    try:
        author = Identity.generate()
        delta = LWWMap(author.peer_id)
        delta.set("k", "from a page", HLCTimestamp(int(time.time() * 1000), 0, author.peer_id))
        signed("cfg", delta, author)  # well signed: refused all the same, for coming from a page
        [page] = delta_pages("cfg", "map", delta.to_bytes(), 1, PARAMS.page_bytes)
        await replica.state.on_ctl(PAGE, page)
        assert replica.state.get("cfg") is None
        assert replica.violations == [(PAGE, "browser_write")]
        assert replica.audited[-1][:2] == (PAGE, "state_browser_write")
        await replica.state.on_ctl(NODE, page)  # the same delta from a node merges
        assert replica.state.get("cfg").crdt.to_dict() == {"k": "from a page"}

        await replica.state.on_ctl(PAGE, ask((PEERS_DOC, "map", {})))
        assert replica.audited[-1][:2] == (PAGE, "state_hidden")
        assert not [m for to, m in replica.sent if to == PAGE]

        for _ in range(int(REQUEST_BURST) + 2):
            await replica.state.on_ctl(PAGE, ask(("cfg", "map", VectorClock().to_dict())))
        assert replica.state.dropped["rate_limited"] >= 1
        served = len(replica.deltas(PAGE))
        assert 1 <= served <= REQUEST_BURST - 1  # the registry request took one token too
    finally:
        await replica.state.stop()
