"""PeerScore: rewards and penalties, caps, decay, persistence, and this node's own edges."""

from __future__ import annotations

import json
import math

import pytest

from f0mesh.trust import BehaviourParams, Event, PeerScore, TrustGraph, own_edge_weight, sync_own_edges


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def test_first_deliveries_raise_behaviour_up_to_a_cap(clock: FakeClock) -> None:
    params = BehaviourParams(max_reward=0.2, first_delivery_cap=100)
    ps = PeerScore(params, clock)
    assert ps.behaviour("a") == 0.0
    ps.record("a", Event.FIRST_DELIVERY, 50)
    assert ps.behaviour("a") == pytest.approx(0.1)
    ps.record("a", "first_delivery", 10_000)
    assert ps.behaviour("a") == pytest.approx(0.2)
    assert ps.counters("a") == {"first_delivery": 100.0}  # the counter itself is capped


@pytest.mark.parametrize(
    ("event", "weight"),
    [
        (Event.INVALID_SIGNATURE, "invalid_signature_weight"),
        (Event.REPLAY, "replay_weight"),
        (Event.RATE_LIMITED, "rate_limited_weight"),
        (Event.MALFORMED, "malformed_weight"),
    ],
)
def test_penalties_are_squared_and_clamped(clock: FakeClock, event: Event, weight: str) -> None:
    params = BehaviourParams()
    ps = PeerScore(params, clock)
    ps.record("a", event)
    assert ps.behaviour("a") == pytest.approx(-getattr(params, weight))
    ps.record("a", event, 1)
    assert ps.behaviour("a") == pytest.approx(max(-1.0, -4 * getattr(params, weight)))
    ps.record("a", event, 10_000)
    assert ps.behaviour("a") == -1.0
    assert ps.counters("a")[str(event)] == params.penalty_cap


def test_rewards_offset_small_faults(clock: FakeClock) -> None:
    ps = PeerScore(BehaviourParams(), clock)
    ps.record("a", Event.FIRST_DELIVERY, 100)
    ps.record("a", Event.RATE_LIMITED, 2)
    assert ps.behaviour("a") == pytest.approx(0.2 - 0.01 * 4)


def test_counters_decay_towards_zero_penalties_more_slowly(clock: FakeClock) -> None:
    params = BehaviourParams(reward_half_life_s=10.0, penalty_half_life_s=100.0, decay_to_zero=0.01)
    ps = PeerScore(params, clock)
    ps.record("good", Event.FIRST_DELIVERY, 80)
    ps.record("bad", Event.MALFORMED, 1)
    clock.now += 10.0
    assert ps.counters("good") == {"first_delivery": pytest.approx(40.0)}
    assert ps.counters("bad") == {"malformed": pytest.approx(0.5**0.1)}
    clock.now += 90.0
    assert ps.counters("bad") == {"malformed": pytest.approx(0.5)}
    assert ps.behaviour("bad") == pytest.approx(-params.malformed_weight * 0.25)
    clock.now += 1000.0  # both below decay_to_zero: the peers are forgotten
    assert ps.behaviour("good") == 0.0 and ps.behaviour("bad") == 0.0
    assert ps.peers() == []


def test_a_clock_stepping_back_grants_nothing(clock: FakeClock) -> None:
    ps = PeerScore(BehaviourParams(), clock)
    ps.record("a", Event.REPLAY, 3)
    clock.now -= 500.0
    assert ps.counters("a") == {"replay": 3.0}


def test_tracked_peers_are_bounded(clock: FakeClock) -> None:
    ps = PeerScore(BehaviourParams(max_peers=3), clock)
    for peer in ("a", "b", "c"):
        ps.record(peer, Event.FIRST_DELIVERY)
    ps.record("a", Event.FIRST_DELIVERY)  # a is now the most recently updated
    ps.record("d", Event.FIRST_DELIVERY)
    assert ps.peers() == ["a", "c", "d"]


def test_bad_input_is_refused(clock: FakeClock) -> None:
    ps = PeerScore(BehaviourParams(), clock)
    with pytest.raises(ValueError):
        ps.record("a", "teleported")
    with pytest.raises(ValueError):
        ps.record("a", Event.REPLAY, -1)
    with pytest.raises(ValueError):
        ps.record("a", Event.REPLAY, math.nan)
    ps.record("a", Event.REPLAY, 0)
    assert ps.peers() == []


def test_snapshot_survives_a_restart(clock: FakeClock) -> None:
    params = BehaviourParams(penalty_half_life_s=100.0)
    ps = PeerScore(params, clock)
    ps.record("a", Event.FIRST_DELIVERY, 30)
    ps.record("b", Event.INVALID_SIGNATURE, 2)
    clock.now += 100.0
    data = json.loads(json.dumps(ps.to_dict()))
    later = FakeClock()
    later.now = 5.0  # a fresh monotonic clock after restart
    restored = PeerScore.from_dict(data, params, later)
    assert restored.peers() == ["a", "b"]
    assert restored.behaviour("b") == pytest.approx(ps.behaviour("b"))
    assert restored.counters("b") == {"invalid_signature": pytest.approx(1.0)}
    data["peers"]["a"]["from_the_future"] = 3
    assert PeerScore.from_dict(data, params, later).counters("a") == restored.counters("a")
    with pytest.raises(ValueError):
        PeerScore.from_dict({"format": 99, "peers": {}}, params, later)
    with pytest.raises(ValueError):
        PeerScore.from_dict({"format": 1, "peers": {"a": {"replay": "many"}}}, params, later)


def test_own_edge_weight_formula() -> None:
    params = BehaviourParams(default_opinion=0.0, edge_decimals=2)
    assert own_edge_weight(None, 0.0, params) == 0.0
    assert own_edge_weight(None, 0.15, params) == 0.15
    assert own_edge_weight(0.5, 0.2, params) == 0.7
    assert own_edge_weight(0.95, 0.2, params) == 1.0
    assert own_edge_weight(0.8, -0.3, params) == 0.5
    assert own_edge_weight(1.0, -1.0, params) == 0.0  # a trusted peer turning bad loses its edge
    assert own_edge_weight(0.0, 0.2, params) == 0.0  # an explicit 0 is a block
    assert own_edge_weight(0.5, 0.123456, params) == 0.62
    assert own_edge_weight(None, 0.0, BehaviourParams(default_opinion=0.3)) == 0.3
    with pytest.raises(ValueError):
        own_edge_weight(1.5, 0.0, params)


def test_penalties_lower_this_nodes_edge(clock: FakeClock) -> None:
    ps = PeerScore(BehaviourParams(), clock)
    g = TrustGraph()
    opinions = {"friend": 0.8, "blocked": 0.0}
    for peer in ("friend", "helper", "blocked", "me"):
        ps.record(peer, Event.FIRST_DELIVERY, 100)
    assert sync_own_edges(g, "me", opinions, ps)
    assert g.out_edges("me") == {"friend": 1.0, "helper": 0.2, "blocked": 0.0}
    version = g.version
    assert not sync_own_edges(g, "me", opinions, ps)  # nothing moved: no graph version bump
    assert g.version == version

    ps.record("friend", Event.INVALID_SIGNATURE, 1)
    ps.record("helper", Event.MALFORMED, 2)
    assert sync_own_edges(g, "me", opinions, ps)
    edges = g.out_edges("me")
    assert edges["friend"] == pytest.approx(0.5)  # 0.8 + 0.2 - 0.5
    assert "helper" not in edges  # 0.2 - 0.25 * 4 < 0: no opinion and no positive weight, no edge
    assert edges["blocked"] == 0.0


def test_sync_keeps_explicit_opinions_first_when_over_the_edge_limit(clock: FakeClock) -> None:
    ps = PeerScore(BehaviourParams(), clock)
    g = TrustGraph(max_out_edges=3)
    for i in range(5):
        ps.record(f"p{i}", Event.FIRST_DELIVERY, 10 * (i + 1))
    sync_own_edges(g, "me", {"op": 0.1}, ps)
    assert g.out_edges("me") == {"op": 0.1, "p4": 0.1, "p3": 0.08}
