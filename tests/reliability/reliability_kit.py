"""Helpers shared by the reliability tests: an in-process attacker, raw frames, process figures.

The attacker is the in-process f0mesh ``Node`` of tests/hostile.py (no HTTP server), linked to a real
``f0mesh up`` process over WebRTC; tests use its link to send whatever they like, bypassing the framing layer
with ``link.ctl.send(frame)`` where the frames themselves are the attack. Everything that blocks
(HTTP to the node process, /proc reads) runs in a thread so the attacker's event loop keeps going.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import re
import struct
import time
from collections.abc import Callable
from typing import Any

from f0mesh.crdt import HLCTimestamp
from f0mesh.gossip import Envelope
from f0mesh.identity import Identity
from f0mesh.node import Node
from f0mesh.rtc.link import Link

from nodes import NodeProcess

TYPE_BATCH, TYPE_START, TYPE_MORE = 0x01, 0x02, 0x03
CHUNK = struct.Struct(">BII")
LENGTH = struct.Struct(">H")


async def poll(fn: Callable[[], Any], timeout: float, what: str, interval: float = 0.3) -> Any:
    """Call ``fn`` in a thread until it returns something truthy; fail the test after ``timeout``."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = await asyncio.to_thread(fn)
        if last:
            return last
        await asyncio.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what} (last: {last!r})")


async def get(node: NodeProcess, path: str, **params: Any) -> Any:
    response = await asyncio.to_thread(node.http.get, path, params=params or None)
    assert response.status_code == 200, (path, response.status_code, response.text[:300])
    return response.json()


async def healthy(node: NodeProcess) -> None:
    """The process is alive and answers /healthz with status ok."""
    assert node.proc is not None and node.proc.poll() is None, node.log_tail()
    body = await get(node, "/healthz")
    assert body["status"] == "ok", body


def log_text(node: NodeProcess) -> str:
    path = node.data_dir / "node.log"
    return path.read_text(errors="replace") if path.exists() else ""


def log_has(node: NodeProcess, pattern: str, since: int = 0) -> bool:
    """Whether the node's log, from byte offset ``since`` on, matches the regular expression."""
    return re.search(pattern, log_text(node)[since:]) is not None


def log_size(node: NodeProcess) -> int:
    return len(log_text(node))


def behaviour(node: NodeProcess, peer_id: str) -> float:
    components = node.http.get("/api/trust").json()["components"]
    return components.get(peer_id, {}).get("behaviour", 0.0)


def envelope(
    identity: Identity, seq: int, payload: Any, topic: str = "attack", wall_ms: int | None = None
) -> Envelope:
    wall_ms = int(time.time() * 1000) if wall_ms is None else wall_ms
    return Envelope.create(identity, seq, HLCTimestamp(wall_ms, 0, identity.peer_id), topic, payload, 8)


async def send_envelopes(link: Link, raws: list[bytes]) -> None:
    await link.send({"t": "gossip", "m": {"type": "msgs", "msgs": raws}})


# -- raw frames ------------------------------------------------------------------------------------


def start_frame(msg_id: int, total: int, data: bytes) -> bytes:
    return CHUNK.pack(TYPE_START, msg_id, total) + data


def more_frame(msg_id: int, offset: int, data: bytes) -> bytes:
    return CHUNK.pack(TYPE_MORE, msg_id, offset) + data


def batch_frame(*payloads: bytes) -> bytes:
    return bytes((TYPE_BATCH,)) + b"".join(LENGTH.pack(len(p)) + p for p in payloads)


async def send_raw(link: Link, frames: list[bytes], high_water: int = 256 * 1024) -> None:
    """Frames straight onto the ctl DataChannel, bypassing framing, paced on bufferedAmount so the
    attacker's own link is not starved (aiortc's send() never refuses data)."""
    for frame in frames:
        await _buffer_below(link, high_water)
        link.ctl.send(frame)


async def _buffer_below(link: Link, level: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    for _ in itertools.count():
        if link.ctl.bufferedAmount <= level:
            return
        if time.monotonic() > deadline or link.ctl.readyState != "open":
            raise AssertionError(f"the attacker's ctl buffer did not drain ({link.ctl.bufferedAmount} bytes)")
        await asyncio.sleep(0.005)


# -- the attacker ----------------------------------------------------------------------------------


async def close_quietly(node: Node, peer_id: str) -> None:
    """Close the attacker's link with a final bye, so the target does not redial it."""
    with contextlib.suppress(Exception):
        await node.links.close_link(peer_id, detail="attacker done")


def log_text_since(node: NodeProcess, since: int) -> str:
    return log_text(node)[since:]
