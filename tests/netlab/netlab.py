"""Netlab: network namespaces joined by a user-space link emulator, for tests over impaired networks.

Each namespace gets ``lo`` up and one TUN device (``tun0``) holding an address of a private /24; that
address is its only non-loopback address and IPv6 is off on it, so aioice gathers exactly one host
candidate. The addresses exist only inside the namespaces, so concurrent labs never collide and no
traffic can leave them. Packets between namespaces go through ``emulator.py`` (a subprocess in the root
namespace) which applies delay, jitter, loss and rate per direction; see its docstring for the model.

Everything a lab creates is removed by ``close()`` (also on failure); namespaces are named
``f0lab-<owner pid>-<random>-<i>`` so ``cleanup_stale()`` can tell leftovers of dead runs from the
namespaces of a run still going on.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import os
import secrets
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

PREFIX = "f0lab-"
EMULATOR = Path(__file__).with_name("emulator.py")
PORTFWD = Path(__file__).with_name("portfwd.py")
_CMD_TIMEOUT_S = 10.0

Node = int | str


class NetlabError(RuntimeError):
    """The lab could not be built or torn down; tests must fail on it, never skip."""


@dataclass(frozen=True, slots=True)
class LinkSpec:
    """Impairments of one direction of a link (see emulator.py for how they combine).

    ``jitter_ms`` is the half-width of a uniform distribution, or the standard deviation of a normal
    one; ``rate_kbps`` None means unlimited; packets keep their order unless ``reorder``.
    """

    delay_ms: float = 0.0
    jitter_ms: float = 0.0
    jitter_dist: Literal["uniform", "normal"] = "uniform"
    loss_pct: float = 0.0
    rate_kbps: float | None = None
    queue_packets: int = 1000
    reorder: bool = False

    def __post_init__(self) -> None:
        if self.delay_ms < 0 or self.jitter_ms < 0:
            raise ValueError("delay_ms and jitter_ms must be >= 0")
        if self.jitter_dist not in ("uniform", "normal"):
            raise ValueError(f"jitter_dist must be 'uniform' or 'normal', not {self.jitter_dist!r}")
        if not 0 <= self.loss_pct <= 100:
            raise ValueError("loss_pct must be within 0..100")
        if self.rate_kbps is not None and self.rate_kbps <= 0:
            raise ValueError("rate_kbps must be positive (or None for unlimited)")
        if self.queue_packets < 1:
            raise ValueError("queue_packets must be >= 1")


def _run(argv: Sequence[str], *, timeout: float = _CMD_TIMEOUT_S, input: str | None = None) -> str:
    try:
        proc = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout, input=input)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise NetlabError(f"{' '.join(argv)}: {exc}") from exc
    if proc.returncode != 0:
        raise NetlabError(f"{' '.join(argv)} failed ({proc.returncode}): {proc.stderr.strip()}")
    return proc.stdout


def list_namespaces() -> list[str]:
    out = _run(["ip", "netns", "list"])
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def _kill_namespace_processes(ns: str) -> None:
    """SIGKILL whatever still runs inside ``ns``: it can only have been started there by a lab."""
    with contextlib.suppress(NetlabError):
        for pid in _run(["ip", "netns", "pids", ns]).split():
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid), signal.SIGKILL)


def _owner_alive(ns: str) -> bool:
    try:
        pid = int(ns[len(PREFIX) :].split("-", 1)[0])
    except ValueError:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def cleanup_stale() -> list[str]:
    """Delete f0lab-* namespaces (and temp dirs) whose owning process is gone; return the namespaces."""
    removed = []
    for ns in list_namespaces():
        if ns.startswith(PREFIX) and not _owner_alive(ns):
            _kill_namespace_processes(ns)
            with contextlib.suppress(NetlabError):
                _run(["ip", "netns", "del", ns])
                removed.append(ns)
    for tmp in Path(tempfile.gettempdir()).glob(f"{PREFIX}*"):
        if tmp.is_dir() and not _owner_alive(tmp.name):
            shutil.rmtree(tmp, ignore_errors=True)
    return removed


def check_prerequisites() -> None:
    """Raise NetlabError saying what is missing; a lab needs root, /dev/net/tun and iproute2."""
    if os.geteuid() != 0:
        raise NetlabError("netlab needs root (CAP_NET_ADMIN, CAP_SYS_ADMIN) to create network namespaces")
    if not os.path.exists("/dev/net/tun"):
        raise NetlabError("netlab needs /dev/net/tun (the tun module or a container device mapping)")
    for tool in ("ip", "sysctl"):
        if shutil.which(tool) is None:
            raise NetlabError(f"netlab needs {tool!r} on PATH (Debian packages iproute2, procps)")


class Netlab:
    """N namespaces joined by the emulator; a context manager, sync (``with``) or async (``async with``).

    Nodes are addressed by index (0..n-1) or namespace name. ``link`` applies to every direction,
    ``links[(src, dst)]`` overrides one direction; ``set_link`` changes them while running.
    """

    def __init__(
        self,
        n: int = 2,
        *,
        link: LinkSpec | None = None,
        links: Mapping[tuple[Node, Node], LinkSpec] | None = None,
        seed: int = 0,
        subnet: str = "10.213.0.0/24",
        ifname: str = "tun0",
        ready_timeout_s: float = 10.0,
    ) -> None:
        net = ipaddress.ip_network(subnet)
        if not isinstance(net, ipaddress.IPv4Network):
            raise ValueError("netlab subnets are IPv4")
        if not net.is_private:
            raise ValueError(f"netlab subnet must be private, got {subnet}")
        hosts = list(net.hosts())
        if not 1 <= n <= len(hosts):
            raise ValueError(f"n must be within 1..{len(hosts)} for {subnet}")
        self._tag = f"{PREFIX}{os.getpid()}-{secrets.token_hex(3)}"
        self.names = [f"{self._tag}-{i}" for i in range(n)]
        self.addrs = [str(h) for h in hosts[:n]]
        self.prefixlen = net.prefixlen
        self.ifname = ifname
        self.seed = seed
        self._default = link or LinkSpec()
        self._links = {self._pair(s, d): spec for (s, d), spec in (links or {}).items()}
        self._ready_timeout_s = ready_timeout_s
        self._tmp: Path | None = None
        self._emulator: subprocess.Popen[bytes] | None = None
        self._stdout_buf = b""
        self._req_id = 0
        self._lock = threading.Lock()
        self._procs: list[subprocess.Popen[Any]] = []
        self._created: list[str] = []
        self.final_stats: dict[str, Any] | None = None

    # ----- lifecycle -----

    def __enter__(self) -> Netlab:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    async def __aenter__(self) -> Netlab:
        # Setup runs in a thread so the loop stays responsive; if the caller is cancelled meanwhile,
        # the thread still finishes, and the lab it built is torn down instead of leaked.
        starting = asyncio.ensure_future(asyncio.to_thread(self.start))
        try:
            await asyncio.shield(starting)
        except asyncio.CancelledError:
            starting.add_done_callback(self._close_if_started)
            raise
        return self

    def _close_if_started(self, starting: asyncio.Future[None]) -> None:
        if not starting.cancelled() and starting.exception() is None:
            threading.Thread(target=self.close, name="netlab-close").start()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await asyncio.to_thread(self.close)

    def start(self) -> None:
        if self._tmp is not None or self._created:
            raise NetlabError("this lab is already started; a Netlab is used once")
        check_prerequisites()
        try:
            self._start()
        except BaseException:
            self.close()
            raise

    def _start(self) -> None:
        self._tmp = Path(tempfile.mkdtemp(prefix=f"{self._tag}-"))
        for ns in self.names:
            _run(["ip", "netns", "add", ns])
            self._created.append(ns)
            _run(["ip", "-n", ns, "link", "set", "lo", "up"])
            # Devices created from now on in this namespace get no IPv6 at all (no link-local address,
            # no MLD/ND chatter), so the TUN address is the one non-loopback address aioice sees.
            _run(["ip", "netns", "exec", ns, "sysctl", "-q", "-w", "net.ipv6.conf.default.disable_ipv6=1"])
        self._start_emulator()
        for ns, addr in zip(self.names, self.addrs, strict=True):
            _run(["ip", "-n", ns, "addr", "add", f"{addr}/{self.prefixlen}", "dev", self.ifname])
            _run(["ip", "-n", ns, "link", "set", self.ifname, "up"])

    def _start_emulator(self) -> None:
        assert self._tmp is not None
        config = {
            "nodes": [
                {"ns": ns, "addr": addr, "ifname": self.ifname}
                for ns, addr in zip(self.names, self.addrs, strict=True)
            ],
            "default": asdict(self._default),
            "links": {f"{s}>{d}": asdict(spec) for (s, d), spec in self._links.items()},
            "seed": self.seed,
            "stats_path": str(self._tmp / "emulator-stats.json"),
        }
        config_path = self._tmp / "emulator.json"
        config_path.write_text(json.dumps(config))
        with open(self._tmp / "emulator.stderr", "wb") as stderr:
            self._emulator = subprocess.Popen(
                [sys.executable, str(EMULATOR), str(config_path)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=stderr,
                start_new_session=True,
            )
        first = self._read_line(self._ready_timeout_s)
        if first is None or not first.get("ready"):
            reason = first.get("error") if first else "no ready line"
            raise NetlabError(f"emulator did not start: {reason}; stderr: {self._emulator_stderr()}")

    def close(self) -> None:
        """Tear everything down, each step even if an earlier one failed; raise if something is left."""
        errors: list[str] = []
        for proc in self._procs:
            _terminate(proc)
        for ns in self._created:
            _kill_namespace_processes(ns)
        self._stop_emulator()
        for ns in list(self._created):
            try:
                _run(["ip", "netns", "del", ns])
                self._created.remove(ns)
            except NetlabError as exc:
                errors.append(str(exc))
        if self._tmp is not None:
            stats_path = self._tmp / "emulator-stats.json"
            if stats_path.exists():
                self.final_stats = json.loads(stats_path.read_text())
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None
        if errors:
            raise NetlabError("netlab teardown left things behind: " + "; ".join(errors))

    def _stop_emulator(self) -> None:
        emu, self._emulator = self._emulator, None
        if emu is None:
            return
        if emu.stdin is not None:
            with contextlib.suppress(OSError):
                emu.stdin.close()  # EOF: it writes its counters and exits
        try:
            emu.wait(timeout=5)
        except subprocess.TimeoutExpired:
            emu.kill()
            emu.wait(timeout=5)
        if emu.stdout is not None:
            emu.stdout.close()

    def _emulator_stderr(self) -> str:
        if self._tmp is None or not (self._tmp / "emulator.stderr").exists():
            return ""
        return (self._tmp / "emulator.stderr").read_text(errors="replace").strip()[-2000:]

    # ----- nodes -----

    def _index(self, node: Node) -> int:
        if isinstance(node, int) and not isinstance(node, bool) and 0 <= node < len(self.names):
            return node
        if isinstance(node, str) and node in self.names:
            return self.names.index(node)
        raise KeyError(f"no such netlab node: {node!r}")

    def _pair(self, src: Node, dst: Node) -> tuple[int, int]:
        s, d = self._index(src), self._index(dst)
        if s == d:
            raise ValueError("a link joins two different nodes")
        return s, d

    def ns(self, node: Node) -> str:
        """The namespace name of a node."""
        return self.names[self._index(node)]

    def addr(self, node: Node) -> str:
        """The node's IPv4 address on its TUN device, reachable from every other node of the lab."""
        return self.addrs[self._index(node)]

    def run(
        self, node: Node, argv: Sequence[str], env: Mapping[str, str] | None = None, **popen_kwargs: Any
    ) -> subprocess.Popen[Any]:
        """Start ``argv`` inside the node's namespace; ``env`` adds to the inherited environment.

        The process gets its own session; ``close()`` terminates it (SIGTERM, then SIGKILL after 3 s)
        together with anything else still running in the namespace.
        """
        full_env = {**os.environ, **(env or {})}
        proc = subprocess.Popen(
            ["ip", "netns", "exec", self.ns(node), *argv],
            env=full_env,
            start_new_session=True,
            **popen_kwargs,
        )
        self._procs.append(proc)
        return proc

    def exec(
        self, node: Node, argv: Sequence[str], *, timeout: float, env: Mapping[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run ``argv`` to completion inside the node's namespace (text output captured)."""
        proc = self.run(node, argv, env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            _terminate(proc)
            raise
        return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)

    def forward(self, node: Node, port: int, *, timeout: float = 10.0) -> int:
        """Expose TCP ``127.0.0.1:port`` inside the node on a loopback port of the root namespace.

        The test process lives outside the namespaces, so this is how it reaches a node's HTTP API
        without giving the namespace a second interface. Returns the root-side port.
        """
        proc = subprocess.Popen(
            [sys.executable, str(PORTFWD), f"/run/netns/{self.ns(node)}", str(port)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            start_new_session=True,
        )
        self._procs.append(proc)
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], timeout)
        line = proc.stdout.readline() if ready else b""
        try:
            return int(json.loads(line)["port"])
        except (ValueError, KeyError, TypeError) as exc:
            raise NetlabError(f"port forwarder for {self.ns(node)}:{port} did not start: {line!r}") from exc

    # ----- emulator control -----

    def _read_line(self, timeout: float) -> dict[str, Any] | None:
        emu = self._emulator
        if emu is None or emu.stdout is None:
            raise NetlabError("the emulator is not running")
        fd = emu.stdout.fileno()
        deadline = time.monotonic() + timeout
        while b"\n" not in self._stdout_buf:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            ready, _, _ = select.select([fd], [], [], remaining)
            if ready:
                chunk = os.read(fd, 65536)
                if not chunk:
                    return None
                self._stdout_buf += chunk
        line, self._stdout_buf = self._stdout_buf.split(b"\n", 1)
        return json.loads(line)

    def _request(self, cmd: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            emu = self._emulator
            if emu is None or emu.stdin is None or emu.poll() is not None:
                raise NetlabError(f"the emulator is not running; stderr: {self._emulator_stderr()}")
            self._req_id += 1
            emu.stdin.write((json.dumps({**cmd, "id": self._req_id}) + "\n").encode())
            emu.stdin.flush()
            reply = self._read_line(_CMD_TIMEOUT_S)
        if reply is None or reply.get("id") != self._req_id:
            raise NetlabError(f"emulator gave no reply to {cmd['cmd']!r}: {reply!r}")
        if not reply.get("ok"):
            raise NetlabError(f"emulator refused {cmd['cmd']!r}: {reply.get('error')}")
        return reply

    def stats(self) -> dict[str, Any]:
        """Counters so far: ``{"links": {"0>1": {"packets_in", "forwarded", "bytes_forwarded",
        "dropped_loss", "dropped_queue"}, ...}, "unroutable", "write_errors", "in_flight"}``."""
        return self._request({"cmd": "stats"})["stats"]

    def link_stats(self, src: Node, dst: Node) -> dict[str, int]:
        return self.stats()["links"][f"{self._index(src)}>{self._index(dst)}"]

    def set_link(self, src: Node, dst: Node, spec: LinkSpec, *, both: bool = False) -> None:
        """Change one direction's impairments at once (both directions with ``both``)."""
        s, d = self._pair(src, dst)
        for a, b in [(s, d), (d, s)] if both else [(s, d)]:
            self._request({"cmd": "set", "src": a, "dst": b, "spec": asdict(spec)})


def _terminate(proc: subprocess.Popen[Any]) -> None:
    """SIGTERM the process's session, SIGKILL it after 3 s; lab processes lead their own session."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=3)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)
    for stream in (proc.stdin, proc.stdout, proc.stderr):
        if stream is not None:
            with contextlib.suppress(OSError):
                stream.close()
