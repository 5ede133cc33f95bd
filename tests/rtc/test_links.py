"""Real WebRTC links between ``f0mesh up`` processes on this machine."""

from __future__ import annotations

import concurrent.futures
import re
import sqlite3
import subprocess
import time

from nodes import udp_sockets, wait_for


def test_dial_by_url_then_reuse_from_both_sides(node_factory) -> None:
    a, b = node_factory.many("a", "b")
    first = a.dial(b)
    assert first.status_code == 200, first.text
    body = first.json()
    assert body["peer_id"] == b.peer_id and body["state"] == "open" and body["setup_ms"] > 0
    again = a.dial(b).json()
    assert again["link_id"] == body["link_id"]
    reverse = b.dial(a)
    assert reverse.status_code == 200, reverse.text
    assert len(a.open_links()) == 1 and len(b.open_links()) == 1
    assert reverse.json()["link_id"] == b.open_links()[0]["link_id"]
    link = a.open_links()[0]
    assert link["ice"]["local"] and link["ice"]["remote"]
    _assert_udp_buffers_enlarged(a, b.peer_id, link["ice"]["local"])
    assert b.http.get("/healthz").json()["links"] == 1
    peers = {p["peer_id"]: p for p in b.http.get("/api/peers").json()["peers"]}
    assert peers[a.peer_id]["url"] == a.url and peers[a.peer_id]["linked"] is True


def _assert_udp_buffers_enlarged(node, peer_id: str, local_candidate: str) -> None:
    """The node's gauge says what the kernel (``ss``) says of the link's socket, and it is beyond
    aioice's own 256 KiB request (512 KiB as Linux reports it) unless rmem_max forbids."""
    metrics = node.http.get("/metrics").text
    found = re.search(rf'^f0mesh_link_udp_receive_buffer_bytes{{peer_id="{peer_id}"}} (\S+)$', metrics, re.M)
    assert found, "no receive buffer gauge for the link"
    granted = int(float(found.group(1)))
    with open("/proc/sys/net/core/rmem_max") as fh:
        rmem_max = int(fh.read())
    assert granted >= min(2 * 1024 * 1024, 2 * rmem_max)
    port = local_candidate.split(" ")[0].rsplit(":", 1)[1]
    ss = subprocess.run(
        ["ss", "-u", "-a", "-n", "-m", "sport", "=", f":{port}"], capture_output=True, text=True, timeout=10
    )
    assert f"rb{granted}," in ss.stdout, ss.stdout


def test_dial_by_peer_id_through_registry(node_factory) -> None:
    a, b = node_factory.many("a", "b")
    unknown = a.http.post("/dial", json={"peer_id": b.peer_id})
    assert unknown.status_code == 404 and unknown.json()["error"] == "not_found"
    added = a.http.post("/api/peers", json={"url": b.url})
    assert added.status_code == 200 and added.json()["peer_id"] == b.peer_id
    r = a.http.post("/api/mesh-rtc/dial", json={"to": b.peer_id})
    assert r.status_code == 200, r.text
    assert r.json()["peer_id"] == b.peer_id
    assert [link["peer_id"] for link in b.open_links()] == [a.peer_id]


def test_glare_ends_with_one_link(node_factory) -> None:
    a, b = node_factory.many("a", "b")
    for _ in range(3):
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            fa, fb = pool.submit(a.dial, b), pool.submit(b.dial, a)
            ra, rb = fa.result(), fb.result()
        assert ra.status_code == 200, ra.text
        assert rb.status_code == 200, rb.text
        wait_for(lambda: len(a.open_links()) == 1 and len(b.open_links()) == 1, 10, what="one link each")
        assert ra.json()["link_id"] == a.open_links()[0]["link_id"]
        assert rb.json()["link_id"] == b.open_links()[0]["link_id"]
        live_a = [link for link in a.links() if link["state"] in ("open", "connecting")]
        assert len(live_a) == 1
        assert a.http.delete(f"/api/mesh-rtc/links/{b.peer_id}").status_code == 200
        wait_for(lambda: not b.open_links(), 10, what="link closed on both sides")


def test_killed_peer_detected_by_heartbeat_and_relinked_after_restart(node_factory) -> None:
    a, b = node_factory.many("a", "b")
    assert a.dial(b).status_code == 200
    b.kill()
    killed_at = time.monotonic()
    first = a.link_to(b.peer_id)["link_id"]
    failed = wait_for(lambda: _stored_link(a, first, "failed"), 20, 0.1, "link marked failed")
    detected_s = time.monotonic() - killed_at
    assert "heartbeat" in failed["reason"], failed
    # aiortc alone needs ~30 s of failed consent checks; the heartbeat is what noticed it.
    assert detected_s < 20
    print(f"dead peer noticed after {detected_s:.2f} s")
    b.start()
    relinked = wait_for(
        lambda: (lk := a.link_to(b.peer_id)) and lk["state"] == "open" and lk, 45, 0.3, "redial after restart"
    )
    assert relinked["link_id"] != failed["link_id"]
    assert [link["peer_id"] for link in b.open_links()] == [a.peer_id]


def _stored_link(node, link_id: str, state: str) -> dict | None:
    with sqlite3.connect(node.data_dir / "mesh.db") as db:
        row = db.execute(
            "SELECT link_id, state, reason FROM mesh_links WHERE link_id = ?", (link_id,)
        ).fetchone()
    return {"link_id": row[0], "state": row[1], "reason": row[2]} if row and row[1] == state else None


def test_delete_closes_for_good(node_factory) -> None:
    a, b = node_factory.many("a", "b")
    assert a.dial(b).status_code == 200
    r = a.http.delete(f"/api/mesh-rtc/links/{b.peer_id}")
    assert r.status_code == 200
    wait_for(lambda: not a.open_links() and not b.open_links(), 10, what="closed on both sides")
    time.sleep(4)  # longer than the first redial backoff: neither side may relink
    assert not a.open_links() and not b.open_links()
    assert a.link_to(b.peer_id)["state"] == "closed"
    assert a.http.delete(f"/api/mesh-rtc/links/{b.peer_id}").status_code == 404
    assert a.dial(b).status_code == 200  # dialled again: allowed


def test_admin_endpoints_need_the_token(node_factory) -> None:
    a, b = node_factory.many("a", "b")
    for headers in ({}, {"Authorization": "Bearer wrong"}):
        r = a.http.post("/dial", json={"url": b.url}, headers={"Authorization": ""} | headers)
        assert r.status_code == 401 and r.json()["error"] == "unauthorized"
    assert not a.links()


def test_udp_sockets_do_not_leak_over_50_cycles(node_factory) -> None:
    a, b = node_factory.many("a", "b")
    baseline, baseline_b = udp_sockets(a.proc.pid), udp_sockets(b.proc.pid)
    for _ in range(50):
        assert a.dial(b).status_code == 200
        assert udp_sockets(a.proc.pid) > baseline
        assert a.http.delete(f"/api/mesh-rtc/links/{b.peer_id}").status_code == 200
        wait_for(lambda: udp_sockets(a.proc.pid) == baseline, 10, 0.05, "UDP sockets released")
        wait_for(lambda: not b.open_links(), 10, 0.05, "closed on b")
    assert udp_sockets(a.proc.pid) == baseline
    wait_for(lambda: udp_sockets(b.proc.pid) == baseline_b, 10, what="b released its sockets")


def test_block_list_is_honoured(node_factory) -> None:
    a, b = node_factory.many("a", "b")
    assert a.dial(b).status_code == 200
    assert a.http.post(f"/api/peers/{b.peer_id}/block").status_code == 200
    wait_for(lambda: not a.open_links() and not b.open_links(), 10, what="link closed by the block")
    refused = b.dial(a)
    assert refused.status_code == 502 and "blocked" in refused.json()["detail"]
    assert a.dial(b).status_code == 403
    peers = {p["peer_id"]: p for p in a.http.get("/api/peers").json()["peers"]}
    assert peers[b.peer_id]["blocked"] is True
    assert a.http.delete(f"/api/peers/{b.peer_id}/block").status_code == 200
    assert b.dial(a).status_code == 200
