"""A real network partition, made in namespaces, heals and the replicated state converges.

Four ``f0mesh up`` processes in four namespaces, fully linked through the lab's emulator. The
emulator then drops every packet between {0, 1} and {2, 3} (both ways): the links across fail by
their heartbeat, each side writes to the same document on its own (same key, different values,
plus keys of its own), and the writes spread within each side only. When the emulator forwards
again, the nodes redial on their own (no operator action) and anti-entropy brings all four to one
state, with the concurrent write on the shared key listed as a conflict.
"""

from __future__ import annotations

import contextlib
import itertools
from pathlib import Path
from typing import Any

from network.labnode import LabNode

from netlab import LinkSpec, Netlab, cleanup_stale
from nodes import start_all, wait_for

SUBNET = "10.219.0.0/24"
DOC = "/api/state/cfg"
NODE_FLAGS = ["--d-lo", "1", "--d", "3", "--d-hi", "6", "--qos-interval", "5"]
SIDES = ({0, 1}, {2, 3})
CUT = LinkSpec(loss_pct=100.0)
WHOLE = LinkSpec(delay_ms=2.0)


def open_peers(node: LabNode) -> set[str]:
    links = node.api.get("/api/mesh-rtc/links").json()["links"]
    return {link["peer_id"] for link in links if link["state"] == "open"}


def cfg(node: LabNode) -> dict[str, Any] | None:
    r = node.api.get(DOC)
    return r.json()["value"] if r.status_code == 200 else None


def set_keys(node: LabNode, values: dict[str, Any]) -> None:
    r = node.api.post(DOC, json={"kind": "map", "set": values})
    assert r.status_code == 200, r.text


def test_partition_in_namespaces_heals_and_state_converges(tmp_path: Path) -> None:
    cleanup_stale()
    with contextlib.ExitStack() as stack:
        lab = stack.enter_context(Netlab(4, link=WHOLE, seed=3, subnet=SUBNET))
        nodes = []
        for i in range(4):
            node = LabNode(lab, i, tmp_path / f"n{i}", dial_allow=SUBNET, extra=NODE_FLAGS)
            stack.callback(node.close)
            nodes.append(node)
        start_all(nodes)
        ids = [n.peer_id for n in nodes]
        for a, b in itertools.combinations(range(4), 2):
            r = nodes[a].api.post("/dial", json={"url": nodes[b].url})
            assert r.status_code == 200, r.text
        wait_for(lambda: all(len(open_peers(n)) == 3 for n in nodes), 30, 0.5, "a full mesh of 4")
        set_keys(nodes[0], {"base": 1})
        r = nodes[0].api.post(f"{DOC}/writers", json={"add": ids})  # both sides write it
        assert r.status_code == 200, r.text
        wait_for(
            lambda: all(
                (cfg(n) or {}).get("base") == 1 and n.api.get(DOC).json()["policy"]["writers"] == sorted(ids)
                for n in nodes
            ),
            30,
            0.5,
            "the base and its writers everywhere",
        )

        for a in SIDES[0]:
            for b in SIDES[1]:
                lab.set_link(a, b, CUT, both=True)

        def split() -> bool:
            return all(
                not open_peers(nodes[i]) & {ids[j] for j in range(4) if (j in SIDES[0]) != (i in SIDES[0])}
                for i in range(4)
            )

        wait_for(split, 30, 0.5, "every link across the cut failed by its heartbeat")
        set_keys(nodes[0], {"side": "a", "a_only": 1})
        set_keys(nodes[3], {"side": "b", "b_only": 2})
        wait_for(lambda: (cfg(nodes[1]) or {}).get("a_only") == 1, 30, 0.5, "side A's write on node 1")
        wait_for(lambda: (cfg(nodes[2]) or {}).get("b_only") == 2, 30, 0.5, "side B's write on node 2")
        assert "b_only" not in (cfg(nodes[1]) or {}) and "a_only" not in (cfg(nodes[2]) or {}), (
            "state crossed a partition that drops every packet"
        )
        dropped = sum(lab.link_stats(a, b)["dropped_loss"] for a in SIDES[0] for b in SIDES[1])
        assert dropped > 0, "the cut dropped nothing: the nodes were not talking across it"

        for a in SIDES[0]:
            for b in SIDES[1]:
                lab.set_link(a, b, WHOLE, both=True)

        def converged() -> list[dict[str, Any]] | None:
            values = [cfg(n) for n in nodes]
            first = values[0] or {}
            same = all(v == first for v in values)
            return values if same and first.get("a_only") == 1 and first.get("b_only") == 2 else None

        values = wait_for(converged, 120, 1.0, "one state on all four nodes after the heal")
        assert values[0]["side"] in ("a", "b") and values[0]["base"] == 1
        wait_for(lambda: all(len(open_peers(n)) == 3 for n in nodes), 60, 0.5, "the full mesh back")
        conflicts = [nodes[i].api.get(f"{DOC}/conflicts").json()["conflicts"] for i in range(4)]
        assert any("side" in str(c) for c in conflicts), conflicts
