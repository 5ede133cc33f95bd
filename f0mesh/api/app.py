"""The FastAPI application of a node. Routes only talk to the Node."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI
from fastapi.responses import Response

from f0mesh import __version__
from f0mesh.api import (
    browser,
    dashboard,
    direct,
    errors,
    events,
    gossip,
    mesh_rtc,
    peers,
    sessions,
    subscribe,
    trust,
    worker,
)
from f0mesh.api.auth import AdminGuard, Sessions
from f0mesh.api.limits import BodyLimitMiddleware, StreamSlots
from f0mesh.api.state import router as state_router
from f0mesh.api.worker import get_node
from f0mesh.node import Node

ROUTERS = (
    worker.router, peers.router, mesh_rtc.router, gossip.router, subscribe.router, direct.router,
    trust.router, state_router, events.router, dashboard.router, browser.router, sessions.router,
)  # fmt: skip


def create_app(node: Node, *, manage_node: bool = True) -> FastAPI:
    """``manage_node``: start and stop the node with the app's lifespan (as ``f0mesh up`` does)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if manage_node:
            await node.start()
        try:
            yield
        finally:
            if manage_node:
                await node.stop()

    app = FastAPI(
        title="f0mesh node",
        version=__version__,
        description="A peer of the f0mesh WebRTC mesh. Admin operations need the node's bearer token.",
        lifespan=lifespan,
    )
    app.state.node = node
    app.state.sessions = Sessions(node.config.session_lifetime_s)
    app.state.streams_closing = asyncio.Event()  # set at shutdown: open event streams end (sse.py)
    app.state.event_slots = StreamSlots(
        per_client=node.config.sse_max_per_client,
        anonymous=node.config.sse_max_anonymous,
        admin=node.config.sse_admin_streams,
    )
    errors.install(app)
    app.add_middleware(AdminGuard, fastapi_app=app)
    app.add_middleware(BodyLimitMiddleware, max_bytes=node.config.max_body_bytes)
    # outermost, so preflights never reach the guards; origins checked now, not at the first request
    app.add_middleware(browser.CorsMiddleware, origins=browser.check_origins(node.config.cors_origins))
    # The routers' own routes, not include_router's copies: FastAPI builds every included route's
    # parameters and validators a second time on the first request, and keeps both (~1.4 MB, issue
    # #25). Nothing is added at inclusion: each router carries its own prefix and tags.
    for router in ROUTERS:
        app.router.routes.extend(router.routes)

    @app.get("/metrics", include_in_schema=False)
    async def metrics(node: Node = Depends(get_node)) -> Response:
        return Response(node.metrics.render(), media_type="text/plain; version=0.0.4")

    return app
