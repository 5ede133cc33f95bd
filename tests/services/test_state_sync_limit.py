"""#20: ctl state sync frames are rate limited per neighbour, each kind on its own bucket."""

from __future__ import annotations

from f0mesh.state_sync_limit import StateSyncLimit


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def test_versions_frames_past_the_burst_are_dropped_and_audited() -> None:
    handled: list[tuple[str, str]] = []
    audited: list[tuple[str, str, str]] = []
    clock = Clock()
    limit = StateSyncLimit(
        lambda peer, message: handled.append((peer, message["op"])),
        lambda *row: audited.append(row),
        versions=(1.0, 5.0),
        deltas=(10.0, 20.0),
        clock=clock,
    )
    for _ in range(100):
        await limit("flooder", {"t": "state", "op": "versions"})
    await limit("honest", {"t": "state", "op": "versions"})
    for _ in range(30):
        await limit("flooder", {"t": "state", "op": "delta"})
    assert handled.count(("flooder", "versions")) == 5 and ("honest", "versions") in handled
    assert handled.count(("flooder", "delta")) == 20  # a bucket of its own
    assert limit.dropped == {"versions": 95, "delta": 10}
    assert {row[:2] for row in audited} == {("flooder", "state_rate_limited")}
    clock.now += 2.0
    await limit("flooder", {"t": "state", "op": "versions"})
    assert handled.count(("flooder", "versions")) == 6
    await limit("flooder", {"t": "state", "op": "bogus"})  # the handler judges what it does not know
    assert handled[-1] == ("flooder", "bogus")
