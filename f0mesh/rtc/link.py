"""One WebRTC link to one peer: a peer connection with its two channels.

``ctl`` is reliable and ordered, carried through the framing layer; ``probe`` is unordered with
``maxRetransmits=0`` because a retransmitting channel hides the loss QoS must measure. Both are
negotiated out of band (fixed ids), so they open together with the SCTP association and neither
side waits on an in-band DCEP round trip.

aiortc notices a SIGKILLed peer only after ~30 s of failed consent checks, so the link runs its
own heartbeat: any frame counts as life, and silence beyond ``heartbeat_timeout`` fails the link.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import secrets
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from aiortc import RTCDataChannel, RTCPeerConnection

from f0mesh import wire
from f0mesh.cancellation import cancel_requested
from f0mesh.log_throttle import LogThrottle
from f0mesh.rtc import dtls_buffers, sctp_delayed_sack, sctp_fastpath, udp_buffers
from f0mesh.rtc.close_reason import CloseReason
from f0mesh.rtc.framing import ChannelClosed, FramedChannel
from f0mesh.rtc.ice import path_kind, rtc_configuration, selected_pair
from f0mesh.rtc.link_state import LinkState
from f0mesh.rtc.resources import MemoryBudget
from f0mesh.tasks import TaskSet

log = logging.getLogger("f0mesh.rtc.link")
# A capped host stays capped, and every link on it would say the same: one warning an hour.
_buffer_log = LogThrottle(log, interval_s=3600.0)

CTL_CHANNEL_ID = 0
PROBE_CHANNEL_ID = 1
BYE_DRAIN_S = 0.5

__all__ = ["Link", "LinkSettings", "LinkState"]


@dataclass
class LinkSettings:
    ice_servers: list[dict[str, Any]]
    relay_only: bool = False
    heartbeat_interval: float = 1.0
    heartbeat_timeout: float = 4.0
    connect_timeout: float = 15.0
    max_message_size: int = 16 * 1024 * 1024
    # (peer_id, what): every protocol violation a link sees on ctl, so the node can hold it against the peer
    on_violation: Callable[[str, str], None] | None = None
    # partial inbound messages of all links together (rtc/resources.py); None: per link only
    memory: MemoryBudget | None = None
    # SO_RCVBUF/SO_SNDBUF asked for on the link's UDP socket once open (rtc/udp_buffers.py)
    udp_buffer_bytes: int = udp_buffers.DEFAULT_BUFFER_BYTES


class Link:
    """connecting → open → failed | closed. Closing is idempotent and leaves nothing running."""

    def __init__(
        self,
        *,
        peer_id: str,
        direction: str,
        local_peer_id: str,
        local_url: str | None,
        settings: LinkSettings,
        on_message: Callable[[Link, dict[str, Any]], Awaitable[None] | None],
        on_probe: Callable[[Link, bytes], None],
        on_state: Callable[[Link], None],
    ) -> None:
        self.link_id = secrets.token_hex(8)
        self.peer_id = peer_id
        self.direction = direction
        self.settings = settings
        self.state = LinkState.CONNECTING
        self.cause: CloseReason | None = None
        self.reason: str | None = None  # the words shown for ``cause`` (API, audit, logs)
        self.created_at = time.time()
        self.opened_at: float | None = None
        self.closed_at: float | None = None
        self.remote_url: str | None = None
        self.signaling = "http"  # or "mesh": how the offer and answer travelled
        self.remote_version: list[int] | None = None
        self.browser = False  # the peer is a web page (f0peer.js): never a relay, not in the registry
        self.setup_ms: float | None = None
        self.probe_bytes_sent = 0
        self.probe_bytes_received = 0
        self.udp_buffers: udp_buffers.BufferSizes | None = None  # effective sizes, once open
        self._local_peer_id = local_peer_id
        self._local_url = local_url
        self._on_message = on_message
        self._on_probe = on_probe
        self._on_state = on_state
        self._t0 = time.monotonic()
        self._last_rx = time.monotonic()
        self._last_tx = -math.inf
        self._hello_received = False
        self._opened = asyncio.Event()
        self._settled = asyncio.Event()
        self._tasks = TaskSet(f"link {self.link_id}", log)
        self._closing = False

        sctp_fastpath.install()
        sctp_delayed_sack.install()
        dtls_buffers.install()
        pc = RTCPeerConnection(rtc_configuration(settings.ice_servers, relay_only=settings.relay_only))
        # Let go of by close(): see _release
        self._pc: RTCPeerConnection | None = pc
        self._ctl: RTCDataChannel | None = pc.createDataChannel(
            "ctl", negotiated=True, id=CTL_CHANNEL_ID, ordered=True
        )
        self._probe: RTCDataChannel | None = pc.createDataChannel(
            "probe", negotiated=True, id=PROBE_CHANNEL_ID, ordered=False, maxRetransmits=0
        )
        self._final_pair: tuple[str | None, str | None] = (None, None)
        self._log = LogThrottle(log)  # one line per kind of garbage and interval, whatever the peer sends
        self.framed = FramedChannel(
            self.ctl,
            on_message=self._on_ctl_frame,
            max_message_size=settings.max_message_size,
            on_violation=self._violation,
            memory=settings.memory.scope(peer_id) if settings.memory is not None else None,
        )
        self.ctl.on("open", self._on_channel_open)
        self.probe.on("open", self._on_channel_open)
        self.probe.on("message", self._on_probe_frame)
        self.ctl.on("close", lambda: self._spawn(self.fail(CloseReason.CTL_CLOSED)))
        self.pc.on("connectionstatechange", self._on_pc_state)

    # -- the peer connection, while the link has it ------------------------------------------

    @property
    def pc(self) -> RTCPeerConnection:
        if self._pc is None:
            raise ChannelClosed(f"link {self.link_id} is closed")
        return self._pc

    @property
    def ctl(self) -> RTCDataChannel:
        if self._ctl is None:
            raise ChannelClosed(f"link {self.link_id} is closed")
        return self._ctl

    @property
    def probe(self) -> RTCDataChannel:
        if self._probe is None:
            raise ChannelClosed(f"link {self.link_id} is closed")
        return self._probe

    def _release(self) -> None:
        """A closed link stays in the registry for its retention (--stranger-retention, an hour by
        default: API, redial rules) but has no use for its closed peer connection, whose SCTP, DTLS
        and ICE state cost as much as an open link's (~260 kB each, issue #25); only the figures
        shown for it stay."""
        if self._pc is not None:
            self._final_pair = selected_pair(self._pc)
        self._pc = self._ctl = self._probe = None

    # -- life cycle ------------------------------------------------------------------------

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        self._tasks.spawn(coro)

    def _on_pc_state(self) -> None:
        if self._pc is None:
            return
        state = self._pc.connectionState
        if state in ("failed", "closed") and not self._closing:
            self._spawn(self.fail(CloseReason.PC_FAILED if state == "failed" else CloseReason.PC_CLOSED))

    def _on_channel_open(self) -> None:
        if self.ctl.readyState == "open" and self.probe.readyState == "open":
            self._last_rx = time.monotonic()
            self._spawn(self._send_hello())
            self._spawn(self._heartbeat())

    async def _send_hello(self) -> None:
        with contextlib.suppress(ChannelClosed):
            await self.send(wire.hello(self._local_peer_id, self._local_url))

    def _became_open(self) -> None:
        if self.state is not LinkState.CONNECTING:
            return
        self.state = LinkState.OPEN
        self.opened_at = time.time()
        self.setup_ms = (time.monotonic() - self._t0) * 1000.0
        self._enlarge_udp_buffers()
        self._opened.set()
        self._settled.set()
        self._on_state(self)

    def _enlarge_udp_buffers(self) -> None:
        sock = udp_buffers.link_socket(self.pc)
        if sock is None:
            return
        want = self.settings.udp_buffer_bytes
        self.udp_buffers = sizes = udp_buffers.enlarge(sock, want)
        if sizes is not None and sizes.receive < want:
            _buffer_log.warning(
                "udp_rcvbuf",
                "link UDP receive buffer is %d bytes of the %d asked for: raise net.core.rmem_max "
                "(bulk transfers lose datagrams to a full buffer and slow down)",
                sizes.receive,
                want,
            )

    async def _drained(self) -> None:
        """The bye left the channel's buffer and SCTP had a moment to put it on the wire: closing
        the peer connection at once would abort the association and lose it."""
        for _ in range(int(BYE_DRAIN_S / 0.01)):
            if self.ctl.bufferedAmount == 0 or self.ctl.readyState != "open":
                break
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.05)

    async def wait_open(self, timeout: float) -> bool:
        """True once open; False if the link failed, closed, or the timeout passed first."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._settled.wait(), timeout)
        return self.state is LinkState.OPEN

    async def watch_connect(self) -> None:
        """The attempt's own timeout: a link not open in time fails (aiortc itself may wait forever)."""
        if not await self.wait_open(self.settings.connect_timeout) and self.state is LinkState.CONNECTING:
            await self.fail(CloseReason.CONNECT_TIMEOUT, f"{self.settings.connect_timeout:.0f} s")

    async def fail(self, cause: CloseReason, detail: str | None = None) -> None:
        await self.close(cause, detail, state=LinkState.FAILED)

    async def close(
        self,
        cause: CloseReason,
        detail: str | None = None,
        *,
        state: LinkState = LinkState.CLOSED,
        bye: bool = False,
        final: bool = False,
    ) -> None:
        """``bye`` tells the peer why; ``final`` asks it not to redial (an operator's close)."""
        if self._closing:
            return
        reason = cause.text(detail)
        if bye and self.state is LinkState.OPEN:
            with contextlib.suppress(ChannelClosed, TimeoutError):
                await asyncio.wait_for(self.send({"t": "bye", "reason": reason, "final": final}), 1.0)
                await asyncio.wait_for(self._drained(), BYE_DRAIN_S)
        self._closing = True
        self.state = state
        self.cause = cause
        self.reason = reason
        self.closed_at = time.time()
        self._settled.set()
        self._tasks.cancel()
        await self.framed.close()
        try:
            await asyncio.wait_for(self.pc.close(), 5.0)
        except asyncio.CancelledError:
            if cancel_requested():
                raise
            log.info("link %s: closing the peer connection raised a stray cancellation", self.link_id)
        except Exception as exc:
            log.info("link %s: closing the peer connection failed: %r", self.link_id, exc)
        finally:
            self._release()
        log.info("link %s to %s %s: %s", self.link_id, self.peer_id, state.value, reason)
        self._on_state(self)

    @property
    def live(self) -> bool:
        return self.state.live

    # -- traffic ---------------------------------------------------------------------------

    async def send(self, message: dict[str, Any]) -> None:
        """Hand a message to the ctl channel (queued in order; this is not delivery)."""
        self._last_tx = time.monotonic()
        await self.framed.send(wire.encode(message))

    def send_probe(self, data: bytes) -> bool:
        probe = self._probe
        if probe is None or probe.readyState != "open":
            return False
        self._last_tx = time.monotonic()
        probe.send(data)
        self.probe_bytes_sent += len(data)
        return True

    @property
    def bytes_sent(self) -> int:
        return self.framed.stats.bytes_out + self.probe_bytes_sent

    @property
    def bytes_received(self) -> int:
        return self.framed.stats.bytes_in + self.probe_bytes_received

    def ice_pair(self) -> tuple[str | None, str | None]:
        return selected_pair(self._pc) if self._pc is not None else self._final_pair

    @property
    def path(self) -> str | None:
        return path_kind(*self.ice_pair())

    def _on_probe_frame(self, data: bytes | str) -> None:
        if not isinstance(data, bytes):
            return
        self._last_rx = time.monotonic()
        self.probe_bytes_received += len(data)
        self._on_probe(self, data)

    async def _on_ctl_frame(self, data: bytes) -> None:
        self._last_rx = time.monotonic()
        try:
            message = wire.decode(data)
        except wire.WireError as exc:
            self._log.warning(
                str(exc), "link %s: dropped a ctl frame from %s: %s", self.link_id, self.peer_id, exc
            )
            self._violation("undecodable")
            return
        kind = message["t"]
        if kind == "hb":
            return
        if kind == "hello":
            await self._on_hello(message)
            return
        if kind == "bye":
            reason = str(message.get("reason", ""))[:200]
            cause = CloseReason.CLOSED_BY_PEER if message.get("final") else CloseReason.PEER_LEFT
            self._spawn(self.close(cause, reason))
            return
        if self.state is not LinkState.OPEN:
            return
        result = self._on_message(self, message)
        if result is not None:
            await result

    def _violation(self, what: str) -> None:
        if self.settings.on_violation is None:
            return
        try:
            self.settings.on_violation(self.peer_id, what)
        except Exception:
            log.exception("link %s: violation callback failed", self.link_id)

    def speaks(self, version: tuple[int, int]) -> bool:
        """Whether the peer's hello said ``version`` or later (False before the hello)."""
        return wire.speaks(self.remote_version, version)

    async def _on_hello(self, message: dict[str, Any]) -> None:
        if not wire.version_compatible(message.get("v")):
            log.warning(
                "link %s: peer %s speaks wire version %r", self.link_id, self.peer_id, message.get("v")
            )
            self._spawn(self.close(CloseReason.WIRE_VERSION, repr(message.get("v")), state=LinkState.FAILED))
            return
        if message.get("peer_id") != self.peer_id:
            self._spawn(self.close(CloseReason.UNEXPECTED_PEER, state=LinkState.FAILED))
            return
        url = message.get("url")
        self.remote_url = url if isinstance(url, str) and len(url) < 512 else None
        self.remote_version = message["v"]
        self.browser = message.get("browser") is True
        self._hello_received = True
        self._became_open()

    async def _heartbeat(self) -> None:
        """Beat when nothing else went out for an interval (any frame is life to the peer, and probes
        and gossip usually flow); check for silence eight times per timeout."""
        interval, timeout = self.settings.heartbeat_interval, self.settings.heartbeat_timeout
        tick = min(interval, timeout / 8)
        while not self._closing:
            await asyncio.sleep(tick)
            now = time.monotonic()
            silent = now - self._last_rx
            if silent > timeout:
                self._spawn(self.fail(CloseReason.HEARTBEAT, f"{silent:.1f} s"))
                return
            if now - self._last_tx >= interval:
                self._spawn(self._beat(interval))

    async def _beat(self, interval: float) -> None:
        with contextlib.suppress(ChannelClosed, TimeoutError):
            await asyncio.wait_for(self.send({"t": "hb"}), interval)

    def describe(self) -> dict[str, Any]:
        local, remote = self.ice_pair()
        return {
            "link_id": self.link_id,
            "peer_id": self.peer_id,
            "direction": self.direction,
            "state": self.state.value,
            "opened_at": self.opened_at,
            "closed_at": self.closed_at,
            "reason": self.reason,
            "ice_local": local,
            "ice_remote": remote,
        }
