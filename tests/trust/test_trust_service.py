"""When a node gossips its own opinions: operator changes at once, behaviour drift only when it matters."""

from __future__ import annotations

from f0mesh.trust.service import TrustService

ME, A, B = "me", "peer-a", "peer-b"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _drift(service: TrustService, peer: str, weight: float) -> None:
    """Stands in for behaviour moving an own edge (sync_own_edges writes through the same call)."""
    service.graph.set_opinion(ME, peer, weight)


def _publish(service: TrustService) -> dict[str, float]:
    payload = service.opinions_due()
    assert payload is not None
    service.mark_published(payload)
    return payload["edges"]


def test_operator_opinion_is_due_at_once_and_only_once() -> None:
    clock = Clock()
    service = TrustService(ME, clock=clock)
    service.set_opinion(A, 0.8)
    assert _publish(service) == {A: 0.8}
    assert service.opinions_due() is None
    service.set_opinion(B, 0.4)  # no time has passed: an operator's change is not held back
    assert _publish(service) == {A: 0.8, B: 0.4}
    service.set_opinion(B, 0.4)  # the same opinion again changes nothing worth a message
    assert service.opinions_due() is None


def test_behaviour_drift_waits_for_the_interval_and_a_material_change() -> None:
    clock = Clock()
    service = TrustService(ME, clock=clock)
    interval = service.params.publish_min_interval_s
    step = service.params.publish_min_change
    service.set_opinion(A, 0.5)
    _publish(service)

    _drift(service, A, 0.5 + step * 1.5)
    assert service.opinions_due() is None, "a material change inside the interval waits"
    clock.now += interval
    assert _publish(service) == {A: 0.5 + step * 1.5}

    clock.now += interval
    _drift(service, A, 0.5 + step * 1.9)
    assert service.opinions_due() is None, "drift below the step is not worth a message"
    _drift(service, B, 0.01)
    assert service.opinions_due() is not None, "a new peer in the opinions is"


def test_forty_thousand_invented_edges_are_capped_and_trusted_publishers_kept() -> None:
    """#20: 40 invented origins publishing 1000 edges each were all kept; now the remote edges stay
    under max_remote_edges and the least trusted publishers, not the trusted ones, are refused."""
    service = TrustService(ME)
    honest = [f"H{n}" for n in range(3)]
    for peer in honest:
        service.set_opinion(peer, 1.0)
    for peer in honest:
        edges = {f"{peer}-friend-{k}": 0.5 for k in range(500)}
        assert service.apply_published(peer, {"version": 1, "edges": edges})
    for n in range(40):
        edges = {f"sybil-{n}-{k}": 1.0 for k in range(1000)}
        service.apply_published(f"invented-{n}", {"version": 1, "edges": edges})
    remote = [e for e in service.graph.edges() if e["from"] != ME]
    assert len(remote) <= service.params.max_remote_edges
    assert all(len(service.graph.out_edges(peer)) == 500 for peer in honest)
    # a newly trusted publisher still gets in, in place of an invented one
    service.set_opinion("H9", 1.0)
    assert service.apply_published("H9", {"version": 1, "edges": {"x": 1.0}})
    assert len(service.graph.publishers()) <= service.params.max_publishers
