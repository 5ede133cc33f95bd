"""TCP forwarder from a root-namespace loopback port to ``127.0.0.1:PORT`` inside a network namespace.

Usage: ``python portfwd.py /run/netns/NAME PORT``. It listens on 127.0.0.1 (port chosen by the kernel,
printed as ``{"port": N}``) and, for each connection, creates the inner socket while switched into the
namespace: a socket stays in the namespace it was created in, so both ends live in one process and the
namespace needs no second interface. Exits when stdin closes (its parent, the lab, went away).
Stdlib only.
"""

from __future__ import annotations

import asyncio
import ctypes
import json
import os
import socket
import sys

CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


def _setns(fd: int) -> None:
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns: {os.strerror(err)}")


def socket_in(ns_path: str) -> socket.socket:
    own = os.open("/proc/self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    target = os.open(ns_path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        _setns(target)
        try:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        finally:
            _setns(own)
    finally:
        os.close(target)
        os.close(own)
    sock.setblocking(False)
    return sock


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except ConnectionError:
        pass
    finally:
        writer.close()


async def _handle(
    ns_path: str, port: int, c_reader: asyncio.StreamReader, c_writer: asyncio.StreamWriter
) -> None:
    sock = socket_in(ns_path)
    try:
        await asyncio.wait_for(asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port)), 10)
    except (OSError, TimeoutError):
        sock.close()
        c_writer.close()
        return
    n_reader, n_writer = await asyncio.open_connection(sock=sock)
    await asyncio.gather(_pipe(c_reader, n_writer), _pipe(n_reader, c_writer))


async def main(ns_path: str, port: int) -> None:
    server = await asyncio.start_server(lambda r, w: _handle(ns_path, port, r, w), "127.0.0.1", 0)
    print(json.dumps({"port": server.sockets[0].getsockname()[1]}), flush=True)
    loop = asyncio.get_running_loop()
    stdin_closed = loop.create_future()

    def on_stdin() -> None:
        if not os.read(0, 4096):
            loop.remove_reader(0)
            stdin_closed.set_result(None)

    loop.add_reader(0, on_stdin)
    async with server:
        await stdin_closed


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2])))
