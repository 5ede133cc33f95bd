"""HTTP connections under abuse: read deadlines and a cap on connections that owe a request.

uvicorn's h11 protocol waits for headers and body without a deadline, and middleware only sees a
request once its headers are parsed, so a slowloris (many connections, each sending a request a
byte at a time or not at all) holds descriptors until the process has none left. The guard
therefore lives in the protocol:

- A connection must deliver a request's headers within ``header_timeout`` of starting to wait for
  them (a new connection, or a keep-alive one after its last response); its body must then arrive
  within the same grace plus ``len / min_body_rate`` seconds. Late ones get a 408 and are closed.
- Connections that owe a request ("pending") are capped: past the cap the *oldest* pending ones
  are evicted. Refusing by address would lock out an operator who shares the attacker's address
  (NAT, proxy); evicting the oldest means an honest request, which completes in milliseconds, is
  never the oldest for long. Idle keep-alive connections owe a request too.
- All connections are capped well below the descriptor limit, leaving descriptors for the store,
  WebRTC sockets and outbound calls: at that budget the oldest pending one is evicted at once to
  admit a newcomer, and a newcomer with nothing left to evict gets 503.

With TLS the guard wraps the h11 protocol in asyncio's own TLS protocol itself (rather than letting
the server do it), so a connection counts from its accept, not from the end of its handshake: one
that never finishes a handshake is pending, evictable and timed out like one that never finishes
its headers.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import resource
import socket
import ssl
import time
from asyncio import sslproto
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any, ClassVar, Protocol

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

log = logging.getLogger("f0mesh.api.http")

# Descriptors kept out of the HTTP budget: store, WebRTC sockets, outbound HTTP, logs, the listeners.
FD_RESERVE_MIN = 64
FD_RESERVE_SHARE = 0.25
# Beyond the kernel's usual nr_open; a higher soft limit buys nothing and costs nothing to skip.
FD_LIMIT_CEILING = 1 << 20
SWEEP_DELAY_S = 0.25
LISTEN_QUEUE = 2048


def raise_fd_limit() -> int:
    """Lift the soft RLIMIT_NOFILE to the hard limit (often 1024 vs 524288); return the limit in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    soft, target = _finite(soft), _finite(hard)
    if soft >= target:
        return soft
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    except (OSError, ValueError) as exc:
        log.warning("could not raise the descriptor limit from %d to %d: %s", soft, target, exc)
        return soft
    return target


def _finite(limit: int) -> int:
    return FD_LIMIT_CEILING if limit == resource.RLIM_INFINITY else min(limit, FD_LIMIT_CEILING)


def accept_backlog(fd_limit: int) -> int:
    """uvicorn's backlog, which asyncio also takes as the most connections it accepts in one go."""
    return max(16, min(2048, fd_limit // 16))


def widen_listen_queue(servers: Iterable[asyncio.Server]) -> None:
    """Give started listeners a long kernel queue again after asyncio listened with ``accept_backlog``:
    a connection waiting in that queue costs no descriptor, one accepted does."""
    for server in servers:
        for listening in server.sockets:
            with socket.socket(fileno=os.dup(listening.fileno())) as sock:
                sock.listen(LISTEN_QUEUE)


def connection_budget(fd_limit: int, listeners: int) -> int:
    """How many HTTP connections all listeners together may hold, leaving a reserve of descriptors.

    asyncio accepts up to a backlog of sockets before the protocol sees any of them, and a socket
    closed by eviction lets its descriptor go one loop turn later: the reserve covers a few of
    those batches per listener besides the descriptors the rest of the node needs.
    """
    reserve = max(FD_RESERVE_MIN, int(fd_limit * FD_RESERVE_SHARE)) + 3 * listeners * accept_backlog(fd_limit)
    return max(8 * listeners, fd_limit - reserve)


class Guarded(Protocol):
    """A connection as the guard sees it: plain HTTP, or TLS still in its handshake."""

    def drop(self, reason: str) -> None: ...


class ConnectionGuard:
    """Shared by every connection of one listener: the pending set (oldest first) and the counts."""

    def __init__(
        self, *, header_timeout: float, min_body_rate: float, max_pending: int, max_connections: int
    ) -> None:
        self.header_timeout = header_timeout
        self.min_body_rate = min_body_rate
        self.max_connections = max_connections
        # At most half the budget: complete requests (SSE streams, slow handlers) keep room of their own.
        self.max_pending = max(1, min(max_pending, max_connections // 2))
        self.connections: set[Guarded] = set()
        self.pending: dict[Guarded, None] = {}  # insertion order: oldest first
        self.closed: Counter[str] = Counter()
        self._sweep: asyncio.TimerHandle | None = None

    def admit(self, conn: Guarded) -> bool:
        """Make room for ``conn`` within the descriptor budget; False when nothing can be evicted."""
        while self.pending and len(self.connections) >= self.max_connections:
            self._evict_oldest()
        if len(self.connections) >= self.max_connections:
            return False
        self.connections.add(conn)
        return True

    def set_pending(self, conn: Guarded, pending: bool) -> None:
        self.pending.pop(conn, None)
        if pending and conn in self.connections:
            self.pending[conn] = None  # (re)joins as the newest
            if len(self.pending) > self.max_pending and self._sweep is None:
                # Not at once: a burst is accepted before any of it is read, and an honest request
                # in the middle of it deserves the time to arrive before the oldest are chosen.
                self._sweep = asyncio.get_running_loop().call_later(SWEEP_DELAY_S, self._trim)

    def _trim(self) -> None:
        self._sweep = None
        while len(self.pending) > self.max_pending:
            self._evict_oldest()

    def _evict_oldest(self) -> None:
        oldest = next(iter(self.pending))
        self.forget(oldest)
        oldest.drop("evicted")

    def forget(self, conn: Guarded) -> None:
        self.connections.discard(conn)
        self.pending.pop(conn, None)

    def samples(self) -> Iterable[tuple[str, dict[str, str], int]]:
        for reason, count in sorted(self.closed.items()):
            yield "connections_closed", {"reason": reason}, count


def _raw_response(status: int, phrase: str, code: str, detail: str) -> bytes:
    body = json.dumps({"error": code, "detail": detail}).encode()
    head = (
        f"HTTP/1.1 {status} {phrase}\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    )
    return head.encode() + body


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with the guard's deadlines; subclassed per listener by ``guarded``."""

    guard: ClassVar[ConnectionGuard]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.tls: _GuardedTLS | None = None
        self._phase = "new"
        self._timer: asyncio.TimerHandle | None = None
        self._body_since = 0.0
        self._body_bytes = 0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if self.tls is not None:  # the handshake is done: the connection now counts as this request
            self.guard.forget(self.tls)
        if not self.guard.admit(self):
            self.drop("refused")
            return
        self._track()

    def connection_lost(self, exc: Exception | None) -> None:
        self.guard.forget(self)
        self._cancel_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._phase == "body":
            self._body_bytes += len(data)
        super().data_received(data)
        self._track()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._track()

    def _track(self) -> None:
        """Follow h11's view of the peer: owing headers, owing body, or done with its request."""
        if self.transport is None or self.transport.is_closing():
            return
        state = self.conn.their_state
        phase = "headers" if state is h11.IDLE else "body" if state is h11.SEND_BODY else "done"
        if phase == self._phase:
            return
        self._phase = phase
        self._cancel_timer()
        self.guard.set_pending(self, phase != "done")
        if phase == "headers":
            self._timer = self.loop.call_later(self.guard.header_timeout, self._expired)
        elif phase == "body":
            self._body_since = time.monotonic()
            self._body_bytes = 0
            self._timer = self.loop.call_later(self.guard.header_timeout, self._expired)

    def _expired(self) -> None:
        self._timer = None
        if self.transport.is_closing():
            return
        if self._phase == "body":
            grace = self.guard.header_timeout + self._body_bytes / self.guard.min_body_rate
            wait = self._body_since + grace - time.monotonic()
            # While uvicorn has paused reading (the app is slow to consume), the peer is not at fault.
            if wait > 0 or self.flow.read_paused:
                self._timer = self.loop.call_later(max(wait, 1.0), self._expired)
                return
        self.guard.forget(self)
        self.drop(f"{self._phase}_timeout")

    def drop(self, reason: str) -> None:
        """Close the connection, telling the client why when it has sent part of a request."""
        self.guard.closed[reason] += 1
        self._cancel_timer()
        idle = self._phase == "headers" and not self.conn.trailing_data[0]
        if not idle and (self.cycle is None or not self.cycle.response_started):
            self.transport.write(self._drop_response(reason))
        # An evicted connection's descriptor is wanted now, and a client that does not read must not
        # keep one (nor may a TLS client that never answers the close_notify a graceful close sends).
        if reason == "evicted" or self.transport.get_write_buffer_size():
            self.transport.abort()
        else:
            self.transport.close()

    @staticmethod
    def _drop_response(reason: str) -> bytes:
        if reason == "evicted":
            return _raw_response(503, "Service Unavailable", "evicted", "too many incomplete requests")
        if reason == "refused":
            return _raw_response(503, "Service Unavailable", "busy", "too many connections")
        return _raw_response(408, "Request Timeout", "timeout", "request not received in time")

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


class _GuardedTLS(sslproto.SSLProtocol):
    """asyncio's TLS protocol, counted by the guard from accept until its handshake is done."""

    def __init__(self, app: GuardedH11Protocol, context: ssl.SSLContext) -> None:
        self.guard = app.guard
        super().__init__(
            asyncio.get_running_loop(),
            app,
            context,
            None,
            server_side=True,
            ssl_handshake_timeout=self.guard.header_timeout,
            ssl_shutdown_timeout=self.guard.header_timeout,
        )
        self.raw: asyncio.BaseTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.raw = transport
        super().connection_made(transport)
        if not self.guard.admit(self):
            self.drop("refused")
            return
        self.guard.set_pending(self, True)

    def connection_lost(self, exc: Exception | None) -> None:
        if self in self.guard.connections:  # still in handshake: it failed or took too long
            self.guard.forget(self)
            self.guard.closed["tls_handshake"] += 1
        super().connection_lost(exc)

    def drop(self, reason: str) -> None:
        self.guard.closed[reason] += 1
        if self.raw is not None:
            self.raw.abort()


def guarded(guard: ConnectionGuard, tls: ssl.SSLContext | None = None) -> Callable[..., asyncio.BaseProtocol]:
    """The protocol factory for ``uvicorn.Config(http=...)`` of one listener, serving TLS with ``tls``."""
    bound = type("GuardedH11Protocol", (GuardedH11Protocol,), {"guard": guard})
    if tls is None:
        return bound

    def with_tls(**kwargs: Any) -> asyncio.BaseProtocol:
        app = bound(**kwargs)
        app.tls = _GuardedTLS(app, tls)
        return app.tls

    return with_tls
