"""The virtual-time loop: timers keep their order, time jumps, nothing waits for real."""

from __future__ import annotations

import asyncio
import time

import pytest

from f0mesh.sim.clock import SimulationStalled, VirtualClockLoop, run_virtual


def test_timers_fire_in_order_at_their_virtual_times() -> None:
    async def main() -> list[tuple[str, float]]:
        loop = asyncio.get_running_loop()
        fired: list[tuple[str, float]] = []
        for delay, tag in ((3.0, "c"), (1.0, "a"), (2.0, "b"), (2.0, "b2")):
            loop.call_later(delay, lambda tag=tag: fired.append((tag, loop.time())))
        await asyncio.sleep(5)
        return fired

    assert run_virtual(main()) == [("a", 1.0), ("b", 2.0), ("b2", 2.0), ("c", 3.0)]


def test_an_hour_of_sleeps_and_timeouts_takes_no_real_time() -> None:
    async def main() -> tuple[float, bool]:
        loop = asyncio.get_running_loop()
        start = loop.time()
        await asyncio.gather(*(asyncio.sleep(s) for s in (600, 1800, 3600)))
        timed_out = False
        try:
            await asyncio.wait_for(asyncio.sleep(10_000), timeout=30)
        except TimeoutError:
            timed_out = True
        return loop.time() - start, timed_out

    wall = time.perf_counter()
    elapsed, timed_out = run_virtual(main())
    assert elapsed == pytest.approx(3630.0)
    assert timed_out
    assert time.perf_counter() - wall < 1.0


def test_time_jumps_straight_to_the_next_timer_and_callbacks_see_it() -> None:
    async def main() -> list[float]:
        loop = asyncio.get_running_loop()
        seen: list[float] = []

        async def tick() -> None:
            for _ in range(3):
                await asyncio.sleep(0.25)
                seen.append(loop.time())

        await tick()
        return seen

    assert run_virtual(main(), start=100.0) == [100.25, 100.5, 100.75]


def test_waiting_on_what_nothing_will_set_is_reported_not_hung() -> None:
    async def main() -> None:
        await asyncio.Event().wait()

    with pytest.raises(SimulationStalled):
        run_virtual(main())


def test_advance_moves_the_clock_forward_only() -> None:
    loop = VirtualClockLoop()
    try:
        loop.advance(5)
        assert loop.time() == 5
        with pytest.raises(ValueError):
            loop.advance(-1)
    finally:
        loop.close()


def test_timers_for_the_same_instant_fire_in_the_order_they_were_set_and_cancelled_ones_never() -> None:
    async def main() -> list[int]:
        loop = asyncio.get_running_loop()
        fired: list[int] = []
        handles = [loop.call_at(7.0 + (i % 3), fired.append, i) for i in range(3000)]
        for handle in handles[1::2]:
            handle.cancel()
        await asyncio.sleep(10)
        return fired

    fired = run_virtual(main())
    kept = list(range(0, 3000, 2))
    assert fired == sorted(kept, key=lambda i: i % 3)
