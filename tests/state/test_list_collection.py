"""List tombstones go once every writer has seen them, so a busy list does not grow to the size cap.

Three replicas on a MemoryNetwork (tests/state/kit.py), all writers of one list, append and delete in
turns; anti-entropy rounds carry the versions that tell each replica what every writer has seen.
"""

from __future__ import annotations

from gossip.meshkit import wait_until

from f0mesh.state import ListChange, parse_id

from .kit import PARAMS, Cluster


async def test_a_busy_list_across_three_replicas_keeps_near_its_live_size() -> None:
    mesh = Cluster(3, PARAMS)
    await mesh.boot()
    await mesh.link((0, 1), (1, 2), (0, 2))
    try:
        await mesh[0].state.update("queue", ListChange(append=["start"]))
        await mesh.converged("queue")
        cycles, collected = 60, 0
        for cycle in range(cycles):
            writer = mesh[cycle % 3]
            head = parse_id(writer.state.view("queue")["ids"][0])
            await writer.state.update(
                "queue", ListChange(delete=[head], append=[f"job {cycle}", {"n": cycle}])
            )
            await mesh.converged("queue")
            for replica in mesh.replicas:
                replica.state._push_now()  # a round of anti-entropy: versions both ways
            heard = 4 * (cycle + 1)
            await wait_until(
                lambda n=heard: all(len(r.endpoint.received) >= n for r in mesh.replicas),
                10.0,
                "versions",
            )
            for replica in mesh.replicas:
                collected += replica.state.collect_tombstones()
        values = await mesh.converged("queue")
        assert len(values) == cycles + 1  # each cycle deleted one element and added two
        assert collected > 0
        for replica in mesh.replicas:
            rga = replica.state.get("queue").crdt
            held = len(rga._nodes)
            assert held <= len(values) + 6, f"{held} elements held for {len(values)} live ones"
        await mesh[1].state.update("queue", ListChange(append=["after"]))
        assert (await mesh.converged("queue"))[-1] == "after"
    finally:
        await mesh.close()
