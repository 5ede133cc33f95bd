"""A throwaway coturn TURN server on 127.0.0.1 for tests: static long-term user, own sqlite userdb.

It listens on one free loopback port (UDP and TCP), relays from 127.0.0.1 and may relay only to
127.0.0.1 (every other peer address is denied), with TLS, DTLS, the CLI and RFC 5780's second port
off, so it opens nothing beyond loopback. Its verbose log (allocations, 401s, per-session usage) goes
to ``DIR/turnserver.log`` for the test to read.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import struct
import subprocess
import time
from pathlib import Path

MAKE_DEPS = "coturn's turnserver is not installed: run `make deps` (it installs the Debian package coturn)"
_MAGIC_COOKIE = 0x2112A442
_BINDING_REQUEST, _BINDING_SUCCESS = 0x0001, 0x0101


def free_udp_tcp_port() -> int:
    """A loopback port free for both UDP and TCP (coturn listens on both)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind(("127.0.0.1", 0))
            port = udp.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
                try:
                    tcp.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return port
    raise RuntimeError("no loopback port is free for both UDP and TCP")


def stun_binding(port: int, timeout: float = 0.5) -> bool:
    """True if a STUN Binding request to 127.0.0.1:port gets a success response."""
    txid = os.urandom(12)
    request = struct.pack(">HHI", _BINDING_REQUEST, 0, _MAGIC_COOKIE) + txid
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        try:
            sock.sendto(request, ("127.0.0.1", port))
            data = sock.recv(2048)
        except OSError:
            return False
    return len(data) >= 20 and struct.unpack(">H", data[:2])[0] == _BINDING_SUCCESS and data[8:20] == txid


class TurnServer:
    def __init__(self, workdir: Path, *, user: str, password: str, realm: str = "f0mesh") -> None:
        self.workdir = workdir
        self.user, self.password, self.realm = user, password, realm
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = workdir / "turnserver.log"

    def url(self) -> str:
        return f"turn:127.0.0.1:{self.port}"

    def ice_servers(self, *, password: str | None = None) -> list[dict[str, str]]:
        """The iceServers entry a node needs (``password`` overrides the right one)."""
        credential = self.password if password is None else password
        return [{"urls": self.url(), "username": self.user, "credential": credential}]

    def start(self, timeout: float = 15.0) -> TurnServer:
        binary = shutil.which("turnserver")
        if binary is None:
            raise RuntimeError(MAKE_DEPS)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_udp_tcp_port()
        argv = [
            binary,
            "-n",  # no configuration file: everything is on this command line
            "--listening-ip=127.0.0.1",
            "--relay-ip=127.0.0.1",
            f"--listening-port={self.port}",
            "--lt-cred-mech",
            f"--user={self.user}:{self.password}",
            f"--realm={self.realm}",
            "--allow-loopback-peers",
            "--denied-peer-ip=0.0.0.0-255.255.255.255",
            "--allowed-peer-ip=127.0.0.1",
            "--no-cli",
            "--no-tls",
            "--no-dtls",
            "--no-rfc5780",
            f"--userdb={self.workdir / 'turndb'}",
            f"--pidfile={self.workdir / 'turnserver.pid'}",
            "--log-file=stdout",
            "--simple-log",
            "--verbose",
        ]
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"turnserver exited with {self.proc.returncode}: {self.log_tail()}")
            if stun_binding(self.port):
                return self
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"turnserver did not answer STUN on 127.0.0.1:{self.port}: {self.log_tail()}")

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, 15)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, 9)
            proc.wait(timeout=5)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_tail(self, n: int = 20) -> str:
        return "\n".join(self.log().splitlines()[-n:])

    def allocations(self) -> int:
        """Successful ALLOCATE transactions of the test user so far."""
        pattern = rf"user <{re.escape(self.user)}>: incoming packet ALLOCATE processed, success"
        return len(re.findall(pattern, self.log()))

    def relayed_packets(self) -> int:
        """Packets relayed between allocations and their peers, from the usage lines of closed sessions."""
        pattern = rf"peer usage: realm=<{re.escape(self.realm)}>, username=<{re.escape(self.user)}>, rp=(\d+)"
        return sum(int(n) for n in re.findall(pattern, self.log()))

    def auth_failures(self) -> int:
        return len(re.findall(rf"user {re.escape(self.user)} credentials are incorrect", self.log()))
