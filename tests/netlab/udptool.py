"""Tiny UDP tools run inside lab namespaces, to check that UDP (what WebRTC uses) crosses the emulator.

  python udptool.py echo PORT                              echo every datagram back to its sender
  python udptool.py sink PORT COUNT IDLE_S                 record arrivals, print them as JSON
  python udptool.py client HOST PORT COUNT GAP_S SIZE WAIT_S
                                                           send numbered datagrams, collect the echoes
  python udptool.py blast HOST PORT COUNT SIZE             send numbered datagrams back to back

Servers print ``{"ready": true}`` once bound. Datagrams start with a 4-byte sequence number and an
8-byte send time (CLOCK_MONOTONIC is shared by all namespaces, so one-way times are meaningful).
Stdlib only; every wait is bounded.
"""

from __future__ import annotations

import json
import select
import socket
import struct
import sys
import time

HEADER = struct.Struct("!Id")


def _datagram(seq: int, size: int) -> bytes:
    return HEADER.pack(seq, time.monotonic()).ljust(size, b"\0")


def echo(port: int) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("0.0.0.0", port))
    print(json.dumps({"ready": True}), flush=True)
    while True:
        data, peer = sock.recvfrom(65536)
        sock.sendto(data, peer)


def sink(port: int, count: int, idle_s: float) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("0.0.0.0", port))
    sock.settimeout(idle_s)
    print(json.dumps({"ready": True}), flush=True)
    seqs, sent, arrived = [], [], []
    while len(seqs) < count:
        try:
            data = sock.recv(65536)
        except TimeoutError:
            break
        now = time.monotonic()
        seq, t_send = HEADER.unpack_from(data)
        seqs.append(seq)
        sent.append(t_send)
        arrived.append(now)
    print(json.dumps({"seqs": seqs, "sent": sent, "arrived": arrived}), flush=True)


def client(host: str, port: int, count: int, gap_s: float, size: int, wait_s: float) -> None:
    """Send on a fixed schedule while receiving, so an echo's RTT is not inflated by the sending loop."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.connect((host, port))
    order, rtts_ms = [], []
    seq, next_send, deadline = 0, time.monotonic(), float("inf")
    while len(order) < count:
        now = time.monotonic()
        if seq < count and now >= next_send:
            sock.send(_datagram(seq, size))
            seq += 1
            next_send += gap_s
            if seq == count:
                deadline = now + wait_s
            continue
        if now >= deadline:
            break
        wake = next_send if seq < count else deadline
        ready, _, _ = select.select([sock], [], [], max(0.0, wake - now))
        if ready:
            echoed, t_send = HEADER.unpack_from(sock.recv(65536))
            order.append(echoed)
            rtts_ms.append((time.monotonic() - t_send) * 1000)
    print(json.dumps({"order": order, "rtts_ms": rtts_ms}), flush=True)


def blast(host: str, port: int, count: int, size: int) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.connect((host, port))
    for seq in range(count):
        sock.send(_datagram(seq, size))


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "echo":
        echo(int(args[0]))
    elif cmd == "sink":
        sink(int(args[0]), int(args[1]), float(args[2]))
    elif cmd == "client":
        client(args[0], int(args[1]), int(args[2]), float(args[3]), int(args[4]), float(args[5]))
    elif cmd == "blast":
        blast(args[0], int(args[1]), int(args[2]), int(args[3]))
    else:
        sys.exit(f"unknown command {cmd!r}")
