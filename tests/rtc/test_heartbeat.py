"""A link beats only when nothing else went out for an interval: probes (and the answers to the
peer's probes) already say "alive". The peer here probes once every 10 s, so only our own probe rate
decides whether beats are needed.

How many beats a quiet link sends depends on its other chatter too: system gossip, state sync and peer
exchange each stand in for a beat. Runs logged 2-4 beats in the 6 s watched, the fewest when a state
sync and a gossip burst split the window; so the quiet side must beat at least once, and each
assertion prints what the link sent over time."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from f0mesh.config import NodeConfig
from f0mesh.node import Node

from nodes import free_port

SETTLE_S = 4.0
WATCH_S = 6.0


async def _beats_sent(target_url: str, tmp_path, probe_rate: float) -> tuple[int, str, list[str]]:
    sender = Node(
        NodeConfig(
            data_dir=tmp_path / f"sender-{probe_rate}",
            port=free_port(),
            admin_token="x",
            probe_rate=probe_rate,
        )
    )
    await sender.start()
    try:
        link = await sender.links.dial_url(target_url)
        sent: list[tuple[float, str]] = []
        send = link.send

        async def counting(message: dict[str, Any]) -> None:
            sent.append((time.monotonic(), str(message.get("t"))))
            await send(message)

        await asyncio.sleep(SETTLE_S)  # the chatter of a new link: peer exchange, state sync, telemetry
        link.send = counting  # type: ignore[method-assign]
        start = time.monotonic()
        await asyncio.sleep(WATCH_S)
        beats = sum(kind == "hb" for _, kind in sent)
        timeline = [f"{at - start:.2f} {kind}" for at, kind in sent if kind != "probe"]
        return beats, f"{link.state.value} {link.reason or ''}".strip(), timeline
    finally:
        await sender.stop()


async def test_probes_stand_in_for_beats_and_beats_return_without_them(node_factory, tmp_path) -> None:
    target = await asyncio.to_thread(node_factory, "target", extra=["--probe-rate", "0.1"])
    # Both senders at once, each on its own link: a link's beats depend only on its own traffic.
    (busy, busy_state, busy_log), (quiet, quiet_state, quiet_log) = await asyncio.gather(
        _beats_sent(target.url, tmp_path, probe_rate=4.0), _beats_sent(target.url, tmp_path, probe_rate=0.1)
    )
    assert busy_state == quiet_state == "open", (busy_state, quiet_state)
    assert busy <= 1, f"{busy} beats while probes went out every 0.25 s: {busy_log}"
    assert quiet >= 1, f"no beat in {WATCH_S} s with a probe every 10 s each way: {quiet_log}"
