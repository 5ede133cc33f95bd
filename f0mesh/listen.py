"""The node's listening sockets, bound before anything else starts.

Binding first turns a bad ``--host`` or a taken ``--port`` into one line saying which, before the
node opens its store or dials anyone; the sockets are then handed to uvicorn, so no other process
can take the port in between. The OS's reason is kept apart: an address this machine does not have
(EADDRNOTAVAIL) is not a port in use (EADDRINUSE).
"""

from __future__ import annotations

import contextlib
import errno
import socket

from f0mesh.config import NodeConfig
from f0mesh.errors import ConfigError

BACKLOG = 2048  # uvicorn's default; it listens again with its own setting


def bind(host: str, port: int, port_flag: str = "--port") -> list[socket.socket]:
    """One bound, not yet listening, socket per address ``host`` resolves to (as asyncio would)."""
    try:
        infos = socket.getaddrinfo(
            host or None, port, socket.AF_UNSPEC, socket.SOCK_STREAM, 0, socket.AI_PASSIVE
        )
    except socket.gaierror as exc:
        raise ConfigError(
            f"--host {host}: cannot resolve it ({exc.strerror}): give an address of this machine, "
            "e.g. 127.0.0.1 or 0.0.0.0"
        ) from exc
    addresses = {(family, sockaddr[:2]): proto for family, _, proto, _, sockaddr in infos}
    sockets: list[socket.socket] = []
    try:
        for (family, address), proto in addresses.items():
            sock = socket.socket(family, socket.SOCK_STREAM, proto)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            try:
                sock.bind(address)
            except OSError as exc:
                raise ConfigError(_reason(exc, host, port, port_flag)) from exc
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    return sockets


def bind_for(config: NodeConfig) -> list[list[socket.socket]]:
    """The sockets of each listener, in the order of ``api.listeners.uvicorn_configs``: the main
    port, then the mTLS admin port if there is one."""
    groups = [bind(config.host, config.port, "--port")]
    try:
        if config.admin_port is not None:
            groups.append(bind(config.host, config.admin_port, "--admin-port"))
    except BaseException:
        close(groups[0])
        raise
    return groups


def listen(sockets: list[socket.socket]) -> None:
    """From here connections queue until the server accepts them."""
    for sock in sockets:
        sock.listen(BACKLOG)


def close(sockets: list[socket.socket]) -> None:
    for sock in sockets:
        with contextlib.suppress(OSError):
            sock.close()


def _reason(exc: OSError, host: str, port: int, port_flag: str) -> str:
    if exc.errno == errno.EADDRINUSE:
        return (
            f"cannot listen on {host}:{port}: the port is in use by another process: stop it, "
            f"or choose another {port_flag}"
        )
    if exc.errno == errno.EADDRNOTAVAIL:
        return (
            f"cannot listen on {host}:{port}: {host} is not an address of this machine: "
            "give one it has (see `ip address`), 127.0.0.1, or 0.0.0.0 for all"
        )
    if exc.errno == errno.EACCES:
        return (
            f"cannot listen on {host}:{port}: ports below 1024 need privileges: "
            f"choose {port_flag} 1024 or above"
        )
    return f"cannot listen on {host}:{port}: {exc.strerror or exc}"
