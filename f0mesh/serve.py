"""``f0mesh up``'s serve loop, for the CLI and for anything that runs a node in a process of its own
(bench/node_peer.py adds its routes through ``extend``).

Every check an operator can fail comes before anything listens or dials: the data dir is prepared
and locked and the sockets bound before the node starts; one uvicorn server serves each listener
(two with the mTLS admin port), and one listener down takes the node down.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import hmac
import logging
import os
import pickle
import secrets
import signal
import socket
import stat
import subprocess
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from f0mesh import __version__, listen
from f0mesh.config import NodeConfig
from f0mesh.datadir import DataDirLock, make_private, prepare
from f0mesh.errors import F0MeshError

if TYPE_CHECKING:
    from fastapi import FastAPI

    from f0mesh.node import Node

# called with the started node and its app before the listeners accept anything
Extend = Callable[["Node", "FastAPI"], None]

# Modules a node process never runs, kept out of its memory (issue #25). httpx's __init__ imports its
# own command line whenever that one's optional dependencies are installed (typer brings rich): rich's
# progress bars and syntax highlighting and pygments, ~2.5 MB. Kept out, httpx falls back to a stub
# ``httpx.main`` that nothing in a node calls. FastAPI imports pydantic's v1 compatibility package
# (~0.9 MB) only to refuse v1 models, and treats it as absent when it cannot import it; f0mesh's
# models are v2.
UNUSED_MODULES = ("httpx._main", "pydantic.v1")

# "FD:TOKEN": the pipe a fresh interpreter reads its node's settings from, and the one-time token they
# start with (run_in_fresh_interpreter).
CONFIG_FD_ENV = "F0MESH_SERVE_CONFIG_FD"
PIPE_CAPACITY = 65536  # Linux's pipe buffer: the settings are written whole before exec, unread meanwhile


def keep_out_unused() -> None:
    """Before the node's imports: an import of a module in UNUSED_MODULES then fails (ImportError),
    which is how each importer treats an optional part that is not installed."""
    for name in UNUSED_MODULES:
        sys.modules.setdefault(name, None)  # type: ignore[arg-type]


def run(config: NodeConfig, log_level: str = "info", *, extend: Extend | None = None) -> None:
    """Serve one node until SIGINT or SIGTERM; F0MeshError for what the operator must fix."""
    sockets: list[list[socket.socket]] = []
    lock: DataDirLock | None = None
    try:
        make_private(prepare(config.data_dir))
        lock = DataDirLock(config.data_dir).acquire()
        sockets = listen.bind_for(config)
        asyncio.run(serve(config, log_level, sockets, extend=extend))
    finally:
        for group in sockets:
            listen.close(group)
        if lock is not None:
            lock.release()


def run_in_fresh_interpreter(config: NodeConfig, log_level: str, log_json: bool) -> None:
    """Serve ``config`` in a fresh interpreter that replaces this process (same PID, arguments, standard
    streams): the command line's parser, typer with its own copy of click (~2 MB), is then not held for
    the node's life (issue #25). The settings, parsed and checked here, go over a pipe; settings that do
    not fit in it are served in this interpreter. They start with a one-time token, also in the
    environment, so the new interpreter unpickles only what this one wrote."""
    token = secrets.token_hex(16)
    try:
        settings = token.encode() + pickle.dumps((config, log_level, log_json))
    except (pickle.PicklingError, TypeError, AttributeError):
        settings = b""  # a setting that cannot travel (none today): served here all the same
    if not settings or len(settings) >= PIPE_CAPACITY:
        run(config, log_level)
        return
    read_end, write_end = os.pipe()
    try:
        os.write(write_end, settings)  # whole: an empty pipe takes this much without a reader
    finally:
        os.close(write_end)
    os.set_inheritable(read_end, True)
    sys.stdout.flush()
    sys.stderr.flush()
    flags = subprocess._args_from_interpreter_flags()  # -X, -W, -O ...: the same interpreter settings
    argv = [sys.executable, *flags, "-m", "f0mesh", *sys.argv[1:]]
    try:
        os.execve(sys.executable, argv, {**os.environ, CONFIG_FD_ENV: f"{read_end}:{token}"})
    except OSError:
        os.close(read_end)
        run(config, log_level)


def run_from_pipe() -> int:
    """The fresh interpreter's side of run_in_fresh_interpreter: read the settings, serve them; the exit
    code and the one-line error are the command line's."""
    from f0mesh.console import error_line

    value = os.environ.pop(CONFIG_FD_ENV)
    refused = f"{CONFIG_FD_ENV} is f0mesh up's own hand-over between interpreters: unset it"
    fd_text, _, token = value.partition(":")
    try:
        fd = int(fd_text)
        is_pipe = stat.S_ISFIFO(os.fstat(fd).st_mode)
    except (ValueError, OSError):
        error_line(refused)
        return 2
    try:
        if not is_pipe:
            error_line(refused)
            return 2
        # all of it was written, and the write end closed, before the exec: a read that would wait
        # means a writer of someone else's still holds the pipe
        os.set_blocking(fd, False)
        chunks: list[bytes] = []
        while len(chunks) <= PIPE_CAPACITY and (chunk := os.read(fd, PIPE_CAPACITY)):
            chunks.append(chunk)
    except BlockingIOError:
        error_line(refused)
        return 2
    finally:
        os.close(fd)
    settings, expected = b"".join(chunks), token.encode()
    if len(expected) != 32 or not hmac.compare_digest(settings[:32], expected):
        error_line(refused)  # not what the interpreter that exec'd this one wrote: never unpickled
        return 2
    try:
        config, log_level, log_json = pickle.loads(settings[32:])
        if not isinstance(config, NodeConfig):
            raise TypeError(type(config).__name__)
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, ImportError):
        error_line(refused)
        return 2
    from f0mesh.logs import setup_logging

    setup_logging(log_level, log_json)
    try:
        run(config, log_level)
    except F0MeshError as exc:
        error_line(exc.detail)
        return 2
    except KeyboardInterrupt:
        pass
    return 0


def announce(node: Node, config: NodeConfig) -> None:
    """The start-up block: where the node is, who it is, and how to open its dashboard (the token's
    file, never the token: this lands in logs and journals)."""
    dashboard = f"{config.advertised_url}/  (sign in with the admin token)"
    if config.admin_split:
        host = urlsplit(config.advertised_url).hostname or config.host
        host = f"[{host}]" if ":" in host else host
        dashboard = f"https://{host}:{config.admin_port}/  (a client certificate from --tls-client-ca)"
    token = (
        "given by --admin-token / F0MESH_ADMIN_TOKEN"
        if config.admin_token
        else str((config.data_dir / "admin.token").resolve())
    )
    lines = [
        f"f0mesh {__version__} is up",
        f"  URL          {config.advertised_url}",
        f"  PeerId       {node.peer_id}",
        f"  dashboard    {dashboard}",
        f"  admin token  {token}",
    ]
    print("\n".join(lines), flush=True)


async def serve(
    config: NodeConfig, log_level: str, sockets: list[list[socket.socket]], *, extend: Extend | None = None
) -> None:
    """One node, served by one uvicorn server per listener, on the sockets bound before it started."""
    keep_out_unused()
    import uvicorn

    from f0mesh.api.app import create_app
    from f0mesh.api.http_guard import widen_listen_queue
    from f0mesh.api.listeners import uvicorn_configs
    from f0mesh.node import Node

    uvicorn_log = logging.getLogger("uvicorn.error")

    class Server(uvicorn.Server):
        """Signals are handled once for all listeners below: uvicorn's own handling re-raises the
        signal after shutdown, and a second server would replace the first one's handler."""

        @contextlib.contextmanager
        def capture_signals(self):
            yield

        async def startup(self, sockets=None) -> None:
            await super().startup(sockets)
            widen_listen_queue(self.servers)

        async def shutdown(self, sockets=None) -> None:
            app.state.streams_closing.set()  # event streams end now, not at the graceful timeout
            await super().shutdown(sockets)

        def _log_started_message(self, listeners: Any) -> None:
            # The guard serves TLS itself (http_guard.py), so uvicorn would call every listener http.
            scheme = "https" if config.tls else "http"
            for sock in listeners:
                host, port = sock.getsockname()[:2]
                uvicorn_log.info("listening on %s://%s:%d", scheme, host, port)

    async def run_one(server: Server, bound: list[socket.socket], servers: list[Server]) -> None:
        try:
            await server.serve(sockets=bound)
        except SystemExit:
            pass  # uvicorn exits when its start-up fails; reported below from server.started
        finally:
            for other in servers:  # one listener down takes the node down: no half-served node
                other.should_exit = True

    node = Node(config)
    await node.start()
    loop = asyncio.get_running_loop()
    try:
        app = create_app(node, manage_node=False)
        if extend is not None:
            extend(node, app)
        servers = [Server(c) for c in uvicorn_configs(app, config, log_level)]
        # Modules, the app and the node live as long as the process: out of the cyclic collector's
        # sight, a full collection walks only what came later (~half a node's heap is imports).
        gc.freeze()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, lambda sig=sig: [s.handle_exit(sig, None) for s in servers])
        for group in sockets:
            listen.listen(group)
        announce(node, config)
        try:
            await asyncio.gather(
                *(run_one(s, bound, servers) for s, bound in zip(servers, sockets, strict=True))
            )
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)
        for server in servers:
            if not server.started:
                raise F0MeshError(
                    f"the HTTP server on {server.config.host}:{server.config.port} did not start: "
                    "see the log lines above"
                )
    finally:
        await node.stop()
