"""Every peer is a stranger (issue 20, classes 3 and 4): peer exchange and throwaway identities.

The target is a real ``f0mesh up`` process. The hostile peer is an in-process f0mesh Node (its own
modules, its own identity) linked over WebRTC, or plain HTTP offers signed by fresh identities. The
addresses the attacker hands out point at a small HTTP listener on 127.0.0.x that counts what the
target sends it: the target must not be steered into making requests of the attacker's choosing.
"""

from __future__ import annotations

import asyncio
import http.server
import sqlite3
import threading
from collections.abc import Iterator

import httpx
import pytest
from hostile import attacker_node, offer_sdp
from reliability_kit import envelope, get, healthy, log_has, log_size, poll, send_envelopes

from f0mesh.identity import Identity
from f0mesh.peer_record import PeerRecord
from f0mesh.rtc.link import LinkState
from f0mesh.rtc.signaling import sign_description

from nodes import free_port, rss_kib

PEX_MESSAGES = 20
PEX_RECORDS = 64  # the most one message may carry
PEER_STORE_MAX = 32
THROWAWAY_OFFERS = 150
SHORT_CONNECT = ["--connect-timeout", "5"]  # throwaway links never open: they fail after 5 s, not 15


class Listener:
    """Counts every HTTP request that reaches it and answers 404, as a random host would."""

    def __init__(self, host: str) -> None:
        self.requests: list[str] = []
        listener = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def _count(self) -> None:
                listener.requests.append(f"{self.command} {self.path}")
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_GET = do_POST = _count

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer((host, free_port()), Handler)
        self.url = f"http://{host}:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Listener:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def listener() -> Iterator[Listener]:
    with Listener("127.0.0.2") as it:
        yield it


def _invented(url: str, count: int) -> list[PeerRecord]:
    return [PeerRecord.create(Identity.generate(), f"{url}/fake-{i}") for i in range(count)]


def _peer_ids(node) -> set[str]:
    return {p["peer_id"] for p in node.http.get("/api/peers", params={"limit": 10000}).json()["peers"]}


def _registry(node) -> set[str]:
    return set(node.http.get("/api/state/peers").json()["value"])


def _audit_reasons(node, peer_id: str) -> set[str]:
    rows = node.http.get("/api/audit", params={"limit": 10000, "event": "rejected"}).json()["entries"]
    return {row["reason"] for row in rows if row["peer_id"] == peer_id}


async def _processed(attacker, link, target, seq: int) -> None:
    """A gossip message after the burst reached the target's store, so the burst was handled."""
    marker = envelope(attacker.identity, seq, {"after": "burst"}, topic="marker")
    await send_envelopes(link, [marker.encode()])

    def stored() -> bool:
        rows = target.http.get("/api/gossip/messages", params={"topic": "marker", "limit": 100}).json()
        return marker.id in {m["id"] for m in rows["messages"]}

    await poll(stored, 20, "the marker sent after the burst")


async def test_peer_exchange_is_believed_only_from_trusted_peers_and_stays_bounded(
    node_factory, tmp_path, listener
) -> None:
    target = await asyncio.to_thread(
        node_factory, "target", extra=["--peer-store-max", str(PEER_STORE_MAX), "--dial-rate", "1"]
    )
    third = await asyncio.to_thread(node_factory, "third", extra=["--bootstrap", target.url])
    await poll(lambda: target.peer_id in _registry(third), 30, "the third node to hold the target's registry")
    records = _invented(listener.url, PEX_MESSAGES * PEX_RECORDS)
    fake = {r.peer_id for r in records}
    batches = [records[i : i + PEX_RECORDS] for i in range(0, len(records), PEX_RECORDS)]

    # Marked before the link opens: the attacker is a real node and sends its own peer exchange as the
    # link opens, and the target logs (and audits) a refusal at most once per peer and 5 s, so a mark
    # taken after the dial raced that first line and missed it (seen once in a full run).
    mark = await asyncio.to_thread(log_size, target)
    async with attacker_node(tmp_path / "attacker") as attacker:
        link = await attacker.links.dial_url(target.url)
        assert link.state is LinkState.OPEN
        me = attacker.peer_id
        # 1. A fresh stranger: its peer exchange is dropped whole, with a log line and an audit row.
        for batch in batches:
            await link.send({"t": "pex", "records": [r.to_wire() for r in batch]})
        await _processed(attacker, link, target, 1)  # the ctl channel is ordered: the burst came first
        await asyncio.sleep(3)  # two ticks of the connection manager: time to dial, had it learned
        learned = _peer_ids(target) & fake
        assert not learned, f"{len(learned)} invented peers learned from a stranger"
        assert not listener.requests, f"{len(listener.requests)} requests to the invented addresses"
        assert log_has(target, rf"dropped pex_untrusted from {me}", mark)
        assert "pex_untrusted" in await asyncio.to_thread(_audit_reasons, target, me)

        # 2. The operator trusts the attacker: its records are believed, but the peer store keeps at
        # most --peer-store-max of them, dials pass the gate, and no registry fills with them.
        r = await asyncio.to_thread(target.http.put, f"/api/trust/{me}", json={"weight": 1.0})
        assert r.status_code == 200, r.text
        for batch in batches:
            await link.send({"t": "pex", "records": [r.to_wire() for r in batch]})
        await poll(lambda: _peer_ids(target) & fake, 20, "some invented records learned once trusted")
        await asyncio.sleep(10)  # five ticks of the connection manager, dialling what it learned
        learned = _peer_ids(target) & fake
        in_registry = (_registry(target) | _registry(third)) & fake
        print(
            f"trusted burst of {len(records)} records: {len(learned)} kept (cap {PEER_STORE_MAX}), "
            f"{len(in_registry)} in a registry, {len(listener.requests)} requests to the invented addresses"
        )
        assert 0 < len(learned) <= PEER_STORE_MAX, len(learned)
        assert not in_registry, len(in_registry)
        # One address: a few rounds of at most 3 parallel dials, each failure doubling its backoff
        # from 2 s (rounds at 0, 8, 64 s...); c5738a4 sent ~200 a second.
        assert len(listener.requests) <= 20, listener.requests
        await healthy(target)
        await healthy(third)


def _db_counts(node, ids: set[str]) -> dict[str, int]:
    with sqlite3.connect(node.data_dir / "mesh.db") as db:
        links = db.execute("SELECT peer_id FROM mesh_links WHERE owner = ?", (node.peer_id,)).fetchall()
        peers = db.execute("SELECT peer_id FROM mesh_peers WHERE owner = ?", (node.peer_id,)).fetchall()
    return {
        "link_rows": sum(1 for (p,) in links if p in ids),
        "peer_rows": sum(1 for (p,) in peers if p in ids),
    }


async def test_throwaway_offers_leave_nothing_and_steer_no_requests(node_factory, listener) -> None:
    """Offers signed by fresh identities whose links never open: answered or refused (429), then collected;
    the URL each offer names is never dialled."""
    target = await asyncio.to_thread(
        node_factory, "target", extra=["--gc-interval", "1", "--stranger-retention", "2", *SHORT_CONNECT]
    )
    pid = target.proc.pid
    sdp = await offer_sdp()
    identities = [Identity.generate() for _ in range(THROWAWAY_OFFERS)]
    ids = {i.peer_id for i in identities}
    await asyncio.sleep(2)
    baseline = await asyncio.to_thread(rss_kib, pid)
    statuses: list[int] = []
    async with httpx.AsyncClient(timeout=30) as client:
        gate = asyncio.Semaphore(16)

        async def offer(identity: Identity) -> None:
            body = sign_description(
                identity, "offer", sdp, target.peer_id, f"{listener.url}/{identity.peer_id}"
            )
            async with gate:
                statuses.append((await client.post(f"{target.url}/offer", json=body.to_json())).status_code)

        await asyncio.gather(*(offer(i) for i in identities))
    accepted = statuses.count(200)
    assert accepted > 0 and set(statuses) <= {200, 429}, sorted(set(statuses))
    peak = await asyncio.to_thread(rss_kib, pid)

    left: dict[str, int] = {}

    def collected() -> bool:
        links = target.http.get("/api/mesh-rtc/links").json()["links"]
        left["links"] = sum(1 for lk in links if lk["peer_id"] in ids)
        left.update(_db_counts(target, ids), api_peers=len(_peer_ids(target) & ids))
        return not any(left.values())

    # the links fail after the connect timeout, then wait out the retention (2 s)
    try:
        await poll(collected, 60, "every throwaway link, link row and peer row collected", interval=0.5)
    except AssertionError as exc:
        raise AssertionError(
            f"{exc}; still held: {left}; {len(listener.requests)} from_url requests"
        ) from exc
    after = await asyncio.to_thread(rss_kib, pid)
    print(
        f"{THROWAWAY_OFFERS} throwaway offers: {accepted} answered, {statuses.count(429)} refused (429); "
        f"RSS {baseline} KiB -> {peak} KiB -> {after} KiB after collection; "
        f"{len(listener.requests)} requests to the offers' from_url"
    )
    await asyncio.sleep(3)  # a redial would have come 1 s after the failure
    assert listener.requests == [], listener.requests[:5]
    await healthy(target)
    assert (await get(target, "/healthz"))["links"] == 0
