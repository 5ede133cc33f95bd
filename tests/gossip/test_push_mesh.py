"""Push peers: picked by trust, reciprocal up to D, askers for young messages up to D_hi, links only."""

import random
from dataclasses import replace

from f0mesh.gossip import GossipParams
from f0mesh.gossip.push_mesh import PushMesh

PARAMS = replace(GossipParams(), d=3, d_lo=2, d_hi=5, floor_weight=0.0)


def mesh_of(links: list[str], scores: dict[str, float]) -> PushMesh:
    return PushMesh(PARAMS, lambda: list(links), lambda: scores, random.Random(1))


def test_picks_d_links_by_trust_and_never_an_untrusted_one_without_a_floor():
    links = [f"p{i}" for i in range(8)]
    scores = {p: 1.0 for p in links[:4]}  # p4..p7 score 0
    mesh = mesh_of(links, scores)
    assert set(mesh.targets(excluded=())) <= set(links[:4]) and len(mesh.peers) == PARAMS.d


def test_reciprocity_stops_at_d_and_askers_at_d_hi_and_gone_links_leave():
    links = [f"p{i}" for i in range(10)]
    mesh = mesh_of(links, dict.fromkeys(links, 1.0))
    mesh.maintain()
    for peer in links:
        mesh.pushed_by(peer)
    assert len(mesh.peers) == PARAMS.d
    for peer in links:
        mesh.missed(peer)  # a flood of IWANTs buys at most d_hi push peers
    assert len(mesh.peers) == PARAMS.d_hi
    gone = sorted(mesh.peers)[:4]
    for peer in gone:
        links.remove(peer)
    mesh.maintain()
    assert not mesh.peers & set(gone) and len(mesh.peers) >= PARAMS.d_lo


def test_targets_leave_out_the_excluded_and_refill_below_d_lo():
    links = ["a", "b", "c", "d"]
    mesh = mesh_of(links, dict.fromkeys(links, 1.0))
    first = mesh.targets(excluded={"a"})
    assert "a" not in first and len(mesh.peers) == PARAMS.d
    for peer in list(mesh.peers):
        mesh.remove(peer)
    assert len(mesh.targets(excluded=())) == PARAMS.d  # picked again at once, not at the next heartbeat
