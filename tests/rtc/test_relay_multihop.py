"""Signaling beyond one relay (issue 23): a line a - b - c - d where the private a and d share no
neighbour. a's offer travels b -> c -> d over ``ctl``, d's answer comes back c -> b -> a, and the link
opens; a forged multi-hop offer stops at the first relay.

The four ``f0mesh up`` processes are started once for the module, with the degree manager off so that
nobody dials behind the test's back (a and d would otherwise link to both public nodes).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator

import pytest
from hostile import attacker_node

from f0mesh.rtc.relay import envelope
from f0mesh.rtc.signaling import sign_description

from nodes import NodeProcess, start_all, wait_for

NO_AUTODIAL = ["--d-lo", "0", "--d", "0"]
SDP = "v=0\r\n"


def _open(node: NodeProcess, peer_id: str) -> bool:
    link = node.link_to(peer_id)
    return link is not None and link["state"] == "open"


def _knows(node: NodeProcess, peer_id: str) -> bool:
    return any(p["peer_id"] == peer_id for p in node.http.get("/api/peers").json()["peers"])


def _lists_link(viewer: NodeProcess, origin: NodeProcess, peer_id: str) -> bool:
    """``viewer`` holds ``origin``'s telemetry summary and it lists a link to ``peer_id``."""
    summary = viewer.http.get("/api/telemetry").json()["nodes"].get(origin.peer_id) or {}
    return any(lk.get("peer_id") == peer_id for lk in summary.get("links", []))


def _refused(node: NodeProcess) -> dict[str, float]:
    text = node.http.get("/metrics").text
    return {
        m[1]: float(m[2])
        for m in re.finditer(r'^f0mesh_relay_refused_total\{reason="(\w+)"\} (\S+)', text, re.M)
    }


@pytest.fixture(scope="module")
def line(tmp_path_factory) -> Iterator[dict[str, NodeProcess]]:
    root = tmp_path_factory.mktemp("line")
    nodes = {
        "b": NodeProcess(root / "b", extra=NO_AUTODIAL),
        "c": NodeProcess(root / "c", extra=NO_AUTODIAL),
        "a": NodeProcess(root / "a", extra=[*NO_AUTODIAL, "--no-public-url"]),
        "d": NodeProcess(root / "d", extra=[*NO_AUTODIAL, "--no-public-url"]),
    }
    try:
        start_all(list(nodes.values()))
        a, b, c, d = (nodes[k] for k in "abcd")
        for left, right in ((b, c), (a, b), (d, c)):
            assert left.dial(right).status_code == 200
        wait_for(lambda: _knows(a, d.peer_id), 30, what="a learns d from the mesh")
        wait_for(lambda: _lists_link(b, c, d.peer_id), 30, what="b hears c's telemetry listing d")
        yield nodes
    finally:
        for node in nodes.values():
            node.close()


def test_private_peers_without_a_common_neighbour_link_through_two_relays(line) -> None:
    a, b, c, d = (line[k] for k in "abcd")
    assert {lk["peer_id"] for lk in a.open_links()} == {b.peer_id}
    assert {lk["peer_id"] for lk in d.open_links()} == {c.peer_id}
    before = _refused(b), _refused(c)

    r = a.http.post("/dial", json={"peer_id": d.peer_id}, timeout=60)
    assert r.status_code == 200, r.text
    assert r.json()["state"] == "open"
    out, into = a.link_to(d.peer_id), d.link_to(a.peer_id)
    assert out["signaling"] == "mesh" and out["direction"] == "out", out
    assert into["signaling"] == "mesh" and into["direction"] == "in", into
    # neither relay linked to the far end to carry it
    assert b.link_to(d.peer_id) is None and c.link_to(a.peer_id) is None
    assert (_refused(b), _refused(c)) == before


async def test_a_forged_multi_hop_offer_is_refused_at_the_first_relay(line, tmp_path) -> None:
    a, b, c, d = (line[k] for k in "abcd")
    before = await asyncio.to_thread(_refused, c)
    async with attacker_node(tmp_path / "attacker") as me:
        link = await me.links.dial_url(b.url)
        own = sign_description(me.identity, "offer", SDP, d.peer_id, None).to_json()
        swapped = envelope(d.peer_id, me.peer_id, {**own, "sdp": SDP + "a=swapped\r\n"})
        # a's name on the attacker's offer, and a claim that c carried it before the attacker
        claimed = {**envelope(d.peer_id, a.peer_id, own), "via": [c.peer_id]}
        for message in (swapped, claimed):
            await link.send(message)
        await asyncio.to_thread(
            wait_for,
            lambda: _refused(b).get("bad_signature", 0) >= 1 and _refused(b).get("forged_source", 0) >= 1,
            20,
            what="b refuses a forged signature and a forged hop",
        )
    assert await asyncio.to_thread(_refused, c) == before
    assert d.link_to(me.peer_id) is None
