"""The node's HTTP listeners: one app, served on one port, or on two when administration is split.

Without ``--tls-client-ca`` the main port serves everything (HTTPS with ``--tls-cert``/``--tls-key``).
With it, a second listener on ``--admin-port`` serves the same app to clients holding a certificate
from that CA only, and the main port keeps the peer-facing endpoints alone.

Peers need no client certificate on the main port because TLS is not what authenticates them:
every offer and answer is signed by the sender's Ed25519 key, names the target PeerId, and is
refused when stale or replayed; the DTLS fingerprint inside the signed SDP binds the WebRTC link to
that PeerId. A certificate would add a second identity to manage per peer and would prove nothing
the signature does not. ``/healthz`` only tells a dialler which PeerId to expect, and the signed
answer then proves it.

The admin listener still asks for the bearer token (defence in depth): a leaked client
certificate alone does not administer the node, and neither does a leaked token alone.

Every listener serves through a ``ConnectionGuard`` of its own (read deadlines, a cap on connections
that owe a request, a descriptor budget), so a slowloris on the main port cannot take the admin
port's connections, and ``/healthz`` keeps answering while one is under way.
"""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

import uvicorn
from fastapi.responses import JSONResponse

from f0mesh.api.http_guard import (
    ConnectionGuard,
    accept_backlog,
    connection_budget,
    guarded,
    raise_fd_limit,
)
from f0mesh.config import NodeConfig

CLOSED_HELP = "HTTP connections closed by the node before a request completed, by reason"

# The only paths other peers call (LinkManager and SignalingClient); the relays forward signed SDP.
PEER_PATHS = frozenset({"/healthz", "/offer", "/answer", "/api/mesh-rtc/offer", "/api/mesh-rtc/answer"})
ADMIN_PORT_DETAIL = "admin API is served on the mTLS admin port"


class PeerPortGate:
    """ASGI middleware for the main port of a split node: peer paths pass, everything else is 403.

    An allow list rather than a deny list, so an endpoint added later stays off the peer-facing
    port until someone decides it belongs there.
    """

    def __init__(self, app: Any, admin_port: int) -> None:
        self.app = app
        peer_paths = ", ".join(sorted(PEER_PATHS))
        self.detail = f"{ADMIN_PORT_DETAIL} ({admin_port}); this port serves peers only: {peer_paths}"

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] in ("http", "websocket") and scope["path"] not in PEER_PATHS:
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 1008})
                return
            response = JSONResponse({"error": "admin_port", "detail": self.detail}, status_code=403)
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)


def _tls_context(config: NodeConfig, client_ca: Path | None = None) -> ssl.SSLContext | None:
    """The listener's TLS (1.2 at least), served by the guard's protocol rather than by uvicorn."""
    if not config.tls:
        return None
    assert config.tls_cert is not None and config.tls_key is not None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(config.tls_cert, config.tls_key)
    if client_ca is not None:
        context.load_verify_locations(client_ca)
        context.verify_mode = ssl.CERT_REQUIRED
    return context


def _guard(config: NodeConfig, max_connections: int) -> ConnectionGuard:
    return ConnectionGuard(
        header_timeout=config.http_header_timeout,
        min_body_rate=config.http_min_body_rate,
        max_pending=config.http_max_pending,
        max_connections=max_connections,
    )


def uvicorn_configs(app: Any, config: NodeConfig, log_level: str) -> list[uvicorn.Config]:
    """The main listener first, then the mTLS admin listener when ``--tls-client-ca`` is set.

    Lifts the process's soft descriptor limit first: the connection budget is a share of it.
    """
    fd_limit = raise_fd_limit()
    budget = connection_budget(fd_limit, 2 if config.admin_split else 1)
    # The admin port's clients hold a certificate from the operator's CA: a few connections do.
    admin_share = min(256, budget // 4) if config.admin_split else 0
    guards = {"main": _guard(config, budget - admin_share)}
    if config.admin_split:
        guards["admin"] = _guard(config, admin_share)
    app.state.node.metrics.add_counters(
        "f0mesh_http",
        lambda: (
            (name, CLOSED_HELP, {**labels, "listener": listener}, value)
            for listener, guard in guards.items()
            for name, labels, value in guard.samples()
        ),
    )
    common: dict[str, Any] = {
        "host": config.host,
        "log_config": None,
        "access_log": False,
        "log_level": log_level.lower(),
        "timeout_graceful_shutdown": 5,
        "server_header": False,
        "backlog": accept_backlog(fd_limit),
    }
    main = guarded(guards["main"], _tls_context(config))
    if not config.admin_split:
        return [uvicorn.Config(app, port=config.port, http=main, **common)]
    assert config.admin_port is not None and config.tls_client_ca is not None
    return [
        uvicorn.Config(PeerPortGate(app, config.admin_port), port=config.port, http=main, **common),
        uvicorn.Config(
            app,
            port=config.admin_port,
            http=guarded(guards["admin"], _tls_context(config, config.tls_client_ca)),
            # The main listener runs the app's lifespan; running it twice would start things twice.
            lifespan="off",
            **common,
        ),
    ]
