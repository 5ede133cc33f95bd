"""P1 (time in mesh) and P3 (mesh delivery deficit, off by default, weighted here) of the gossip
score, and their consequence: a mesh peer that forwards nothing falls below one that does and leaves
the mesh."""

import random
from dataclasses import replace

import pytest

from f0mesh.errors import ConfigError
from f0mesh.gossip import Envelope, GossipParams
from f0mesh.gossip.score import PeerScoreParams, PeerScores
from f0mesh.gossip.topic_mesh import TopicMesh
from f0mesh.gossip.topics import Subscriptions

from .meshkit import FAST, Mesh, wait_until
from .test_attacks import Attacker
from .test_score import Clock

P3 = PeerScoreParams(mesh_delivery_weight=-1.0)


def test_time_in_mesh_adds_up_to_its_cap_and_stops_when_the_peer_leaves():
    clock = Clock()
    scores = PeerScores(PeerScoreParams(), dict, clock)
    scores.meshed({"a"})
    clock.now = 100.0
    assert scores.score("a") == pytest.approx(1.0)  # 0.01 a second
    assert scores.score("b") == 0.0
    clock.now = 10_000.0
    assert scores.score("a") == pytest.approx(3.0)  # capped at 300 quanta
    scores.meshed(set())
    assert scores.score("a") == 0.0


def deliver(scores: PeerScores, clock: Clock, mesh: set[str], count: int, first: str, late: str | None):
    """``count`` messages, each first brought by ``first``; ``late`` sends its copy 0.1 s later."""
    for n in range(count):
        message_id = f"{clock.now}-{n}"
        scores.first_delivery(first)  # P2, as the engine counts it
        scores.first_receipt(message_id, first, mesh, expect=True)
        if late is not None:
            clock.now += 0.1
            scores.duplicate(message_id, late, mesh)


def test_a_mesh_peer_that_never_delivers_ends_below_one_that_does():
    clock = Clock()
    assert PeerScoreParams().mesh_delivery_weight == 0.0  # off unless a deployment weights it
    scores = PeerScores(P3, dict, clock)
    mesh = {"worker", "copier", "freeloader"}
    scores.meshed(mesh)
    clock.now = 11.0  # past the activation
    deliver(scores, clock, mesh, 40, first="worker", late="copier")
    worker, copier, freeloader = (scores.score(p) for p in ("worker", "copier", "freeloader"))
    assert freeloader < 0 < copier < worker
    assert freeloader == pytest.approx(0.15 - 9.0, abs=0.05)  # deficit capped at 3: -1 * 3 ** 2
    assert freeloader > GossipParams().gossip_threshold  # P3 alone leaves the mesh, not the gossip
    assert scores.below("freeloader", -1.0) and not scores.below("copier", -1.0)


def test_nothing_is_expected_before_activation_of_large_messages_or_on_a_quiet_topic():
    clock = Clock()
    scores = PeerScores(P3, dict, clock)
    mesh = {"worker", "idle"}
    scores.meshed(mesh)
    clock.now = 5.0  # in the mesh for less than mesh_delivery_activation_s
    deliver(scores, clock, mesh, 40, first="worker", late=None)
    assert scores.score("idle") >= 0
    clock.now = 20.0
    for n in range(40):  # IDONTWANT told the mesh not to send these
        scores.first_receipt(f"large-{n}", "worker", mesh, expect=False)
    assert scores.score("idle") >= 0
    clock.now = 1_000.0  # a quiet topic: no message, no deficit
    assert scores.score("idle") > 0


def test_a_late_or_repeated_copy_is_not_a_delivery():
    clock = Clock()
    scores = PeerScores(PeerScoreParams(), dict, clock)
    mesh = {"worker", "slow"}
    scores.meshed(mesh)
    clock.now = 11.0
    for n in range(40):
        scores.first_receipt(f"m{n}", "worker", mesh, expect=True)
        for _ in range(3):
            scores.duplicate(f"m{n}", "slow", mesh)  # one credit per message, however many copies
    assert scores.counters("slow")["mesh_delivered"] == pytest.approx(40, abs=1)
    for n in range(40):
        scores.first_receipt(f"x{n}", "worker", mesh, expect=True)
    clock.now += 3.0  # past mesh_delivery_window_s
    for n in range(40):
        scores.duplicate(f"x{n}", "slow", mesh)
    counters = scores.counters("slow")
    assert counters["mesh_expected"] > 75 and counters["mesh_delivered"] < 41


def test_the_mesh_prunes_a_negative_peer_and_does_not_graft_it_back():
    clock = Clock()
    scores = PeerScores(P3, dict, clock)
    links = ["worker", "freeloader", "spare"]
    subs = Subscriptions(["t"], ())
    for peer in links:
        subs.announced(peer, ["t"])
    params = GossipParams(d=2, d_lo=2, d_hi=3)
    mesh = TopicMesh(params, lambda: list(links), dict, random.Random(1), subs, now=clock, score=scores.score)
    mesh.maintain()
    mesh.meshes["t"] = {"worker", "freeloader"}
    scores.meshed(mesh.members())
    clock.now = 11.0
    deliver(scores, clock, mesh.meshes["t"], 40, first="worker", late=None)
    mesh.maintain()
    assert mesh.meshes["t"] == {"worker", "spare"}  # pruned, and the spare grafted in its place
    assert mesh.take_control()["freeloader"]["prune"][0][0] == "t"
    mesh.on_graft("worker", ["t"])
    scores.meshed(mesh.members())  # out of every mesh: P3 no longer counts against it
    assert scores.score("freeloader") >= 0


def test_score_params_are_checked():
    with pytest.raises(ConfigError, match="mesh_delivery_weight"):
        PeerScoreParams(mesh_delivery_weight=1.0)
    with pytest.raises(ConfigError, match="mesh_delivery_threshold"):
        PeerScoreParams(mesh_delivery_threshold=1.5)
    with pytest.raises(ConfigError, match="time_in_mesh_cap"):
        PeerScoreParams(time_in_mesh_cap=0)


class BlackHole(Attacker):
    """Acknowledges every envelope (so no send to it is retried) and forwards none."""

    async def on_message(self, from_peer, message):
        await super().on_message(from_peer, message)
        if message.get("type") == "msgs":
            ids = [Envelope.decode(raw).id for raw in message["msgs"]]
            await self.transport.send(from_peer, {"type": "ack", "ids": ids})


async def test_engines_prune_a_mesh_peer_that_forwards_nothing():
    # the observer (0) hears the publisher (3) through two honest relays (1, 2) and a black hole
    mesh = Mesh(4)
    params = replace(FAST, d=3, d_lo=3, d_hi=6, max_retries=0, heartbeat_s=0.05)
    score_params = replace(P3, mesh_delivery_activation_s=0.0)
    observer = mesh[0]
    await observer.boot(params=params, score_params=score_params, topics=["t"])
    for node in mesh.nodes[1:]:
        await node.boot(params=params)
    hole = BlackHole(mesh)
    await mesh.link([(0, 1), (0, 2), (1, 3), (2, 3)])
    for i in (0, 3):
        await mesh.network.connect(mesh[i].peer_id, hole.peer_id)
    engine = observer.engine
    relays = {mesh[1].peer_id, mesh[2].peer_id}
    everyone = relays | {hole.peer_id}
    await wait_until(
        lambda: engine.mesh.meshes.get("t") == everyone and everyone <= engine.score._meshed,
        5,
        "the observer's mesh of the relays and the hole, its time in mesh running",
    )
    for n in range(30):
        await mesh[3].engine.publish("t", n)
    await wait_until(lambda: hole.peer_id not in engine.mesh.meshes["t"], 5, "the hole pruned")
    assert relays <= engine.mesh.meshes["t"]
    assert all(engine.score.score(p) > 0 for p in relays)
    await mesh.close()
