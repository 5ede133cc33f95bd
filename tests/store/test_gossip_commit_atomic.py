"""A gossip commit is one transaction on both backends: its rows go to the driver's executemany as
tuples (issue #25), and must still fall with the batch's audit rows."""

from __future__ import annotations

import pytest

from f0mesh.identity import Identity
from f0mesh.store import Store


def message(i: int) -> dict:
    return {
        "id": f"a{i:031d}",
        "origin": "o",
        "seq": i,
        "topic": "t",
        "payload": {"i": i},
        "hops": 0,
        "hlc": f"{i}",
        "created_at": 1000.0 + i,
        "received_at": 1000.0 + i,
        "raw": b"r",
    }


def audit(i: int, at: float | None = 1.0) -> dict:
    return {"at": at, "event": "accepted", "message_id": message(i)["id"], "peer": "p", "reason": None}


async def test_a_failed_audit_row_takes_its_messages_with_it(store_url: str) -> None:
    store = await Store.open(store_url, Identity.generate().peer_id)
    try:
        await store.commit_gossip([message(1)], [audit(1)])
        # the audit insert runs after the messages' and breaks NOT NULL: nothing of the batch stays
        with pytest.raises(Exception, match=r"(?i)not null|null value"):
            await store.commit_gossip([message(2), message(3)], [audit(2), audit(3, at=None)])
        assert [m["id"] for m in await store.list_messages(since=0)] == [message(1)["id"]]
        assert await store.last_message_n() == 1
        # the connection went back clean: the next batch commits, numbered after the last kept row
        await store.commit_gossip([message(4)], [audit(4)])
        got = await store.list_messages(since=0)
        assert [(m["id"], m["n"]) for m in got] == [(message(1)["id"], 1), (message(4)["id"], 2)]
        assert await store.get_raw_messages([message(2)["id"], message(3)["id"]]) == {}
    finally:
        await store.close()
