"""The baseline: a peer made of plain aiortc and nothing of f0mesh.

It is built like an f0mesh link so that a comparison measures f0mesh's own layers: one
RTCPeerConnection with ``iceServers=[]`` (host candidates only; aiortc's default would contact a
public STUN host), a reliable ordered ``ctl`` channel and an unordered ``maxRetransmits=0``
``probe`` channel, both negotiated with fixed ids, and unsigned SDP offer/answer over local HTTP.
Traffic is one DataChannel message per application message, and the sender waits on
``bufferedamountlow`` above a high-water mark: what a careful aiortc user writes by hand.

    python -m bench.raw_peer serve --port P   # HTTP: /healthz /offer /connect /close /stats /bench/send
    python -m bench.raw_peer connect URL      # one-shot client: offer, POST it, answer, both channels open
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription

# The same marks as f0mesh's framing defaults, so that only the layers differ, not the tuning.
HIGH_WATER = 128 * 1024
LOW_WATER = 32 * 1024
OPEN_TIMEOUT_S = 20.0
STALL_TIMEOUT_S = 30.0
DONE_TIMEOUT_S = 300.0


class Conn:
    """One peer connection with the two negotiated channels and a byte/message counter on ``ctl``.

    Control words travel as text messages and data as binary ones, so counting adds no header.
    """

    def __init__(self) -> None:
        self.id = secrets.token_hex(4)
        self.t0 = time.monotonic()
        self.setup_ms: float | None = None
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.ctl = self.pc.createDataChannel("ctl", negotiated=True, id=0, ordered=True)
        self.probe = self.pc.createDataChannel(
            "probe", negotiated=True, id=1, ordered=False, maxRetransmits=0
        )
        self.opened = asyncio.Event()
        self.low = asyncio.Event()
        self.ctl.bufferedAmountLowThreshold = LOW_WATER
        self.ctl.on("bufferedamountlow", self.low.set)
        self.ctl.on("open", self._check_open)
        self.probe.on("open", self._check_open)
        self.ctl.on("message", self._on_message)
        self.ctl.on("close", self._on_close)
        self.kind = ""
        self.expect = 0
        self.got = 0
        self.done: asyncio.Future[int] | None = None
        self._closing: asyncio.Task[None] | None = None

    def _check_open(self) -> None:
        if self.ctl.readyState == "open" and self.probe.readyState == "open" and not self.opened.is_set():
            self.setup_ms = (time.monotonic() - self.t0) * 1000.0
            self.opened.set()

    def _on_close(self) -> None:
        """The peer closed (SCTP ABORT): release the connection as an application would."""
        if self._closing is None:
            self._closing = asyncio.ensure_future(self.pc.close())

    def _on_message(self, data: bytes | str) -> None:
        if isinstance(data, str):
            word, _, arg = data.partition(" ")
            if word in ("bytes", "msgs"):
                self.kind, self.expect, self.got = word, int(arg), 0
            elif word == "done" and self.done is not None and not self.done.done():
                self.done.set_result(int(arg))
            return
        self.got += len(data) if self.kind == "bytes" else 1
        if self.expect and self.got >= self.expect:
            self.expect = 0
            self.ctl.send(f"done {self.got}")

    async def _writable(self) -> None:
        if self.ctl.bufferedAmount > HIGH_WATER:
            # bufferedamountlow fires on the way down through LOW_WATER, which is still ahead of us.
            self.low.clear()
            await asyncio.wait_for(self.low.wait(), STALL_TIMEOUT_S)

    async def pump(self, kind: str, total: int, size: int) -> float:
        """Send ``total`` bytes (kind "bytes") or messages ("msgs") of ``size`` bytes; seconds to the ack."""
        payload = os.urandom(size)
        self.done = asyncio.get_running_loop().create_future()
        self.ctl.send(f"{kind} {total}")
        t0 = time.monotonic()
        count, rest = divmod(total, size) if kind == "bytes" else (total, 0)
        for _ in range(count):
            await self._writable()
            self.ctl.send(payload)
        if rest:
            await self._writable()
            self.ctl.send(payload[:rest])
        await asyncio.wait_for(self.done, DONE_TIMEOUT_S)
        return time.monotonic() - t0

    def describe(self) -> dict[str, Any]:
        return {"state": self.pc.connectionState, "ctl": self.ctl.readyState, "setup_ms": self.setup_ms}


class RawPeer:
    def __init__(self, port: int) -> None:
        self.port = port
        self.conns: dict[str, Conn] = {}
        self.http = httpx.AsyncClient(timeout=10)

    async def answer(self, offer: dict[str, Any]) -> dict[str, str]:
        conn = Conn()
        self.conns[conn.id] = conn
        await conn.pc.setRemoteDescription(RTCSessionDescription(sdp=offer["sdp"], type=offer["type"]))
        await conn.pc.setLocalDescription(await conn.pc.createAnswer())
        return {"sdp": conn.pc.localDescription.sdp, "type": conn.pc.localDescription.type}

    async def connect(self, url: str) -> Conn:
        """Offer, POST it to ``url``/offer, apply the answer, wait until both channels are open."""
        conn = Conn()
        self.conns[conn.id] = conn
        try:
            await conn.pc.setLocalDescription(await conn.pc.createOffer())
            local = conn.pc.localDescription
            r = await self.http.post(f"{url.rstrip('/')}/offer", json={"sdp": local.sdp, "type": local.type})
            r.raise_for_status()
            answer = r.json()
            await conn.pc.setRemoteDescription(RTCSessionDescription(sdp=answer["sdp"], type=answer["type"]))
            await asyncio.wait_for(conn.opened.wait(), OPEN_TIMEOUT_S)
        except BaseException:
            await self.close(conn.id)
            raise
        return conn

    async def close(self, conn_id: str) -> bool:
        conn = self.conns.pop(conn_id, None)
        if conn is None:
            return False
        await asyncio.wait_for(conn.pc.close(), 10)
        return True

    async def shutdown(self) -> None:
        for conn_id in list(self.conns):
            with contextlib.suppress(Exception):
                await self.close(conn_id)
        await self.http.aclose()


def create_app(peer: RawPeer) -> Any:
    from fastapi import FastAPI, HTTPException

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await peer.shutdown()

    app = FastAPI(lifespan=lifespan)

    def conn_of(conn_id: str) -> Conn:
        conn = peer.conns.get(conn_id)
        if conn is None:
            raise HTTPException(404, f"no connection {conn_id}")
        return conn

    @app.get("/healthz")
    async def healthz() -> dict[str, Any]:
        return {"status": "ok", "peer_id": f"raw-{peer.port}", "conns": len(peer.conns)}

    @app.post("/offer")
    async def offer(body: dict[str, Any]) -> dict[str, str]:
        return await peer.answer(body)

    @app.post("/connect")
    async def connect(body: dict[str, Any]) -> dict[str, Any]:
        conn = await peer.connect(body["url"])
        return {"conn_id": conn.id, "state": "open", "setup_ms": conn.setup_ms}

    @app.post("/close")
    async def close(body: dict[str, Any]) -> dict[str, Any]:
        return {"ok": await peer.close(body["conn_id"])}

    @app.get("/stats")
    async def stats() -> dict[str, Any]:
        return {"conns": {cid: c.describe() for cid, c in peer.conns.items()}}

    @app.post("/bench/send")
    async def send(body: dict[str, Any]) -> dict[str, Any]:
        conn = conn_of(body["peer"])
        elapsed = await conn.pump(body["kind"], int(body["total"]), int(body["size"]))
        return {"elapsed_s": elapsed}

    return app


async def serve(port: int) -> None:
    import uvicorn

    peer = RawPeer(port)
    config = uvicorn.Config(
        create_app(peer), host="127.0.0.1", port=port, log_config=None, access_log=False, log_level="warning"
    )
    await uvicorn.Server(config).serve()


async def connect_once(url: str) -> None:
    peer = RawPeer(0)
    try:
        t0 = time.monotonic()
        conn = await peer.connect(url)
        wall_ms = (time.monotonic() - t0) * 1000.0
        print(json.dumps({"setup_ms": conn.setup_ms, "wall_ms": wall_ms}))
    finally:
        await peer.shutdown()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.raw_peer", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    sub.add_parser("serve", help="answer offers and run traffic on request").add_argument(
        "--port", type=int, required=True
    )
    sub.add_parser("connect", help="connect once to a serving peer and print the setup time").add_argument(
        "url"
    )
    args = parser.parse_args()
    if args.cmd == "serve":
        asyncio.run(serve(args.port))
    else:
        asyncio.run(connect_once(args.url))


if __name__ == "__main__":
    main()
