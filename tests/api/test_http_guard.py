"""The connection guard's bookkeeping, without sockets: who is evicted, and the descriptor budget."""

from __future__ import annotations

import asyncio

from f0mesh.api.http_guard import SWEEP_DELAY_S, ConnectionGuard, accept_backlog, connection_budget


class Conn:
    def __init__(self, name: str, dropped: list[tuple[str, str]]) -> None:
        self.name = name
        self.dropped = dropped

    def drop(self, reason: str) -> None:
        self.dropped.append((self.name, reason))


async def test_the_oldest_pending_go_first_and_complete_requests_are_never_evicted() -> None:
    guard = ConnectionGuard(header_timeout=10, min_body_rate=1024, max_pending=2, max_connections=5)
    dropped: list[tuple[str, str]] = []
    conns = {name: Conn(name, dropped) for name in "abcdefgh"}
    for name in "abc":
        assert guard.admit(conns[name])
        guard.set_pending(conns[name], True)
    guard.set_pending(conns["a"], True)  # a keep-alive connection waiting again is the newest
    assert dropped == []  # a burst gets a moment before the cap is applied
    await asyncio.sleep(SWEEP_DELAY_S + 0.2)
    assert dropped == [("b", "evicted")]

    for name in "def":  # requests that arrived whole: not pending
        assert guard.admit(conns[name])
        guard.set_pending(conns[name], False)
    assert len(guard.connections) == 5 and dropped == [("b", "evicted")]
    assert guard.admit(conns["g"])  # at the budget: the oldest pending makes room at once
    assert dropped[-1] == ("c", "evicted")
    guard.set_pending(conns["g"], False)
    assert guard.admit(conns["h"])
    assert dropped[-1] == ("a", "evicted")
    guard.set_pending(conns["h"], False)
    assert not guard.admit(Conn("i", dropped))  # nothing left to evict: refused
    assert len(guard.connections) == 5 and len(dropped) == 3


def test_the_budget_keeps_descriptors_in_reserve() -> None:
    for limit in (256, 1024, 65536, 1 << 20):
        budget = connection_budget(limit, 1)
        assert 0 < budget < limit - 64
        assert limit - connection_budget(limit, 2) > limit - budget  # a second listener reserves more
        assert 16 <= accept_backlog(limit) <= 2048
