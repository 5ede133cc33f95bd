"""Six real nodes over real links: split in two by closing the links between the groups, conflicting
writes on both sides, heal, converge with the conflicts listed; a clean stop is announced as a leave and a
restarted node keeps its state."""

from __future__ import annotations

from typing import Any

from nodes import wait_for

DOC = "/api/state/cfg"


def _doc(node) -> Any:
    r = node.http.get(DOC)
    return (r.json()["value"], r.json()["version"]) if r.status_code == 200 else None


def _status(node, peer_id: str) -> str | None:
    entry = node.http.get("/api/state/peers").json()["value"].get(peer_id)
    return entry and entry["status"]


def test_split_mesh_converges_after_heal_and_restart_keeps_state(node_factory) -> None:
    first = node_factory("s")
    nodes = [first, *node_factory.many(*["s"] * 5, extra=["--bootstrap", first.url])]
    ids = {n.peer_id for n in nodes}
    # every pair linked, so closing the cross pairs leaves no path and nobody a fresh peer to dial
    wait_for(
        lambda: all({lk["peer_id"] for lk in n.open_links()} == ids - {n.peer_id} for n in nodes),
        60,
        1.0,
        "a full mesh",
    )
    put = first.http.put(DOC, json={"kind": "map", "value": {"color": "grey", "size": 0}})
    assert put.status_code == 200, put.text
    writers = first.http.post(f"{DOC}/writers", json={"add": sorted(ids)})  # both sides write it
    assert writers.status_code == 200, writers.text
    wait_for(
        lambda: all(
            _doc(n) == _doc(first) and n.http.get(DOC).json()["policy"]["writers"] == sorted(ids)
            for n in nodes
        ),
        30,
        0.5,
        "the first write and its writers everywhere",
    )

    left, right = nodes[:3], nodes[3:]
    right_ids = {n.peer_id for n in right}
    for node in left:
        for link in node.open_links():
            if link["peer_id"] in right_ids:
                assert node.http.delete(f"/api/mesh-rtc/links/{link['peer_id']}").status_code == 200

    def crossing() -> list[tuple[str, str]]:
        return [
            (n.peer_id, lk["peer_id"])
            for n in left
            for lk in n.links()
            if lk["peer_id"] in right_ids and lk["state"] in ("connecting", "open")
        ]

    wait_for(lambda: not crossing(), 20, 0.5, "no link across the split")
    assert (
        left[1].http.put(DOC, json={"kind": "map", "value": {"color": "red", "size": 1, "l": 1}}).is_success
    )
    assert (
        right[1].http.put(DOC, json={"kind": "map", "value": {"color": "blue", "size": 2, "r": 1}}).is_success
    )
    for group, extra in ((left, "l"), (right, "r")):
        wait_for(
            lambda g=group, k=extra: (
                all((_doc(n) or [{}])[0].get(k) == 1 for n in g) and _doc(g[0]) == _doc(g[2])
            ),
            30,
            0.5,
            "each side to agree on its own writes",
        )
    assert _doc(left[0])[0]["color"] == "red" and _doc(right[0])[0]["color"] == "blue"
    assert not crossing(), "the connection manager re-linked across the split"

    heal = left[0].dial(right[0])
    assert heal.status_code == 200, heal.text
    wait_for(lambda: all(_doc(n) == _doc(first) for n in nodes), 60, 0.5, "every node to converge")
    final = _doc(first)[0]
    assert final["l"] == final["r"] == 1 and final["color"] in ("red", "blue") and final["size"] in (1, 2)

    def listed() -> set[str]:
        found = set()
        for node in nodes:
            for conflict in node.http.get(f"{DOC}/conflicts").json()["conflicts"]:
                assert conflict["kept"] == final[conflict["key"]], conflict
                found.add(conflict["key"])
        return found

    wait_for(lambda: listed() >= {"color", "size"}, 20, 0.5, "the conflicts to be listed")
    assert listed() == {"color", "size"}

    restarted = right[2]
    before = _doc(restarted)
    restarted.stop()
    wait_for(lambda: _status(first, restarted.peer_id) == "left", 20, 0.5, "the leave to arrive")
    restarted.start()
    assert _doc(restarted) == before
    wait_for(lambda: _status(first, restarted.peer_id) == "alive", 30, 0.5, "the restarted node back")
