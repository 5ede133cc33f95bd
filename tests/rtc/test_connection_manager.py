"""The connection manager keeps every node between D_lo and D_hi with no manual dialling."""

from __future__ import annotations

from nodes import wait_for


def test_eight_nodes_from_one_bootstrap_url_link_up(node_factory) -> None:
    first = node_factory("boot")
    others = node_factory.many(*["n"] * 7, extra=["--bootstrap", first.url])
    nodes = [first, *others]

    def degrees() -> list[int] | None:
        counts = [len(n.open_links()) for n in nodes]
        return counts if min(counts) >= 3 else None

    counts = wait_for(degrees, 90, 1.0, "every node with at least 3 open links")
    assert max(counts) <= 12
    # Peer exchange taught the later nodes about peers other than the bootstrap node.
    last = others[-1]
    known = {p["peer_id"] for p in last.http.get("/api/peers").json()["peers"]}
    assert len(known) >= 5
    linked_to = {link["peer_id"] for link in last.open_links()}
    assert linked_to - {first.peer_id}


def test_links_above_d_hi_are_pruned(node_factory) -> None:
    degree = ["--d-lo", "1", "--d", "2", "--d-hi", "2"]
    hub = node_factory("hub", extra=degree)
    # One after another, as before: five spokes dialling the hub at once can leave one briefly past
    # D_hi + 1 when the hub has pruned, before the spoke's own next tick prunes it.
    spokes = [node_factory("s", extra=[*degree, "--bootstrap", hub.url]) for _ in range(5)]
    wait_for(lambda: all(len(s.open_links()) >= 1 for s in spokes), 60, 1.0, "every spoke linked")
    wait_for(lambda: len(hub.open_links()) <= 2, 60, 0.5, "hub pruned to D_hi")
    # A spoke learns the others by peer exchange, and those it accepts can lift it past D_hi + 1 until
    # its own next tick prunes; a snapshot can catch that moment (it failed once in a clean-clone run).
    # The property is that every node comes back within D_hi + 1.

    history: list[list[int]] = []

    def bounded() -> list[int] | None:
        history.append([len(n.open_links()) for n in [hub, *spokes]])
        return history[-1] if max(history[-1]) <= 3 else None

    try:
        wait_for(bounded, 60, 0.5, "every node within D_hi + 1 links")
    except AssertionError as exc:
        raise AssertionError(f"{exc}; open links per node over time: {history[-10:]}") from None
    pruned = [link for link in hub.links() if (link["reason"] or "").startswith("pruned")]
    assert pruned, hub.links()
