"""LinkManager: the asyncio adapter around this node's link registry.

The rules (one live link per peer, glare, holds, redial backoff, caps) live in ``rtc/registry.py``
without I/O; this module asks them and does the aiortc and HTTP calls. A loser's dial in a glare waits
for the winner's link. A peer that restarted and dials a smaller peer is refused until that peer's
heartbeat fails the stale link and it redials, a delay of a few seconds. A stranger whose offer never
became an open link is not wanted: the URL in its offer is never dialled, or it would steer this
node's requests. Dials the node makes by itself (the connection manager's, redials) pass the dial
gate, and links that failed or closed are forgotten by ``collect`` once their retention is over.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Coroutine
from typing import Any, Protocol

from aiortc import RTCSessionDescription

from f0mesh.address_policy import AddressPolicy
from f0mesh.errors import F0MeshError, NotFoundError, PeerError, PolicyError, RateLimitedError
from f0mesh.identity import Identity, is_peer_id
from f0mesh.rtc.close_reason import CloseReason
from f0mesh.rtc.dial_gate import DialGate
from f0mesh.rtc.link import Link, LinkSettings, LinkState
from f0mesh.rtc.registry import LinkRegistry, RegistryParams
from f0mesh.rtc.relay import envelope as relay_envelope
from f0mesh.rtc.sdp import SdpError, count_candidates, validate_sdp
from f0mesh.rtc.signaling import (
    NonceCache,
    SignalingError,
    SignedDescription,
    sign_description,
    verify_description,
)
from f0mesh.rtc.signaling_client import GlareLost, SignalingClient
from f0mesh.tasks import TaskSet

log = logging.getLogger("f0mesh.rtc.link_manager")

# How long one relay may take to bring back an answer before the next is tried: a relay from before
# mesh signaling drops the unknown ctl message without a word.
MESH_REPLY_TIMEOUT_S = 8.0
STOP_TASKS_S = 5.0  # bound on the wait for cancelled background tasks when the manager stops


class NoCandidatesError(F0MeshError):
    """Nothing to offer: no interface address, or the TURN server refused (a bad gateway for the link)."""

    code = "no_candidates"
    status = 502


class LinkDelegate(Protocol):
    """What the node supplies: the manager knows nothing of gossip, QoS or the store."""

    def link_state_changed(self, link: Link) -> None: ...
    def link_message(self, link: Link, message: dict[str, Any]) -> Awaitable[None] | None: ...
    def link_probe(self, link: Link, data: bytes) -> None: ...
    def peer_learned(self, peer_id: str, url: str | None) -> None: ...
    def peer_url(self, peer_id: str) -> str | None: ...
    def peer_blocked(self, peer_id: str) -> bool: ...
    def mesh_relays(self, peer_id: str) -> list[str]: ...


class LinkManager:
    def __init__(
        self,
        identity: Identity,
        *,
        local_url: str,
        settings: LinkSettings,
        policy: AddressPolicy,
        client: SignalingClient,
        delegate: LinkDelegate,
        max_links: int = 64,
        max_pending_offers: int = 32,
        redial_base_s: float = 1.0,
        redial_max_s: float = 15.0,
        redial_give_up_s: float = 600.0,
        gate: DialGate | None = None,
    ) -> None:
        self.identity = identity
        self.local_url = local_url
        self.settings = settings
        self.policy = policy
        self.client = client
        self.delegate = delegate
        self.registry: LinkRegistry[Link] = LinkRegistry(
            identity.peer_id,
            RegistryParams(
                max_links=max_links,
                max_pending_offers=max_pending_offers,
                redial_base_s=redial_base_s,
                redial_max_s=redial_max_s,
                redial_give_up_s=redial_give_up_s,
            ),
        )
        self.gate = gate
        self.nonces = NonceCache()
        self._pending: dict[str, Link] = {}
        self._mesh_waits: dict[str, tuple[str, asyncio.Future[dict[str, Any]]]] = {}
        self._redials: dict[str, asyncio.Task[Any]] = {}
        self._tasks = TaskSet("link manager", log)
        self._changed = asyncio.Condition()
        self._stopping = False

    # -- queries ---------------------------------------------------------------------------

    def links(self) -> list[Link]:
        return self.registry.links()

    def open_links(self) -> list[Link]:
        return self.registry.open_links()

    def node_peers(self) -> list[str]:
        """Peers on open links that are nodes, not web pages (pages take no part in state sync)."""
        return [link.peer_id for link in self.registry.open_links() if not link.browser]

    def is_browser(self, peer_id: str) -> bool:
        link = self.registry.get(peer_id)
        return link is not None and link.browser

    def get(self, peer_id: str) -> Link | None:
        return self.registry.get(peer_id)

    def speaks(self, peer_id: str, version: tuple[int, int]) -> bool:
        """Whether the link to ``peer_id`` is up and its peer's hello said ``version`` or later."""
        link = self.registry.get(peer_id)
        return link is not None and link.speaks(version)

    def wanted(self) -> dict[str, str | None]:
        return self.registry.wanted()

    # -- dialling --------------------------------------------------------------------------

    async def dial_url(self, url: str, *, timeout: float | None = None) -> Link:
        url = await self.policy.check_url(url)
        health = await self.client.healthz(url)
        peer_id = health["peer_id"]
        if not is_peer_id(peer_id):
            raise PeerError(f"{url}/healthz returned an invalid peer_id")
        self.delegate.peer_learned(peer_id, url)
        return await self.dial(peer_id, url, timeout=timeout)

    async def dial(
        self, peer_id: str, url: str | None = None, *, timeout: float | None = None, gated: bool = False
    ) -> Link:
        """Return the open link to ``peer_id``, creating one if needed; raises if none opens in time.

        ``gated``: the node dials by itself, so the dial gate must admit it, an operator's hold stands,
        and the peer becomes wanted only once its link opens."""
        self.registry.check_dial(peer_id, blocked=self.delegate.peer_blocked(peer_id))
        url = url or self.delegate.peer_url(peer_id)
        if not gated:
            self.registry.operator_dial(peer_id, url)
        deadline = time.monotonic() + (timeout or self.settings.connect_timeout + 5)
        if not self.registry.has_live(peer_id):
            relays = self.delegate.mesh_relays(peer_id) if url is None else []
            self.registry.check_new_dial(peer_id, url, relays)
            if gated and self.gate is not None and url is not None:
                wait = self.gate.wait(url, backoff=not self.registry.is_wanted(peer_id))
                if wait > 0:
                    raise RateLimitedError(f"dial of {url} deferred {wait:.1f} s by the dial gate")
            link = self._new_link(peer_id, "out")
            link.remote_url = url  # its hello may name another; redials use what the peer says
            try:
                if url is None:
                    await self._connect_via_mesh(link, relays)
                else:
                    await self._connect_outbound(link, url)
                    if self.gate is not None:
                        self.gate.succeeded(url)
            except GlareLost:
                log.info("glare with %s: its offer wins, waiting for its link", peer_id)
                await self._discard(link, CloseReason.GLARE_LOST)
            except F0MeshError as exc:
                self._dial_failed(url)
                await link.fail(CloseReason.SETUP_FAILED, exc.detail)
                raise
            except Exception as exc:
                self._dial_failed(url)
                await link.fail(CloseReason.SETUP_FAILED, f"{type(exc).__name__}: {exc}")
                raise PeerError(f"link to {peer_id} failed: {type(exc).__name__}") from exc
        return await self._await_open(peer_id, deadline)

    def _dial_failed(self, url: str | None) -> None:
        if self.gate is not None and url is not None:
            self.gate.failed(url)

    async def _await_open(self, peer_id: str, deadline: float) -> Link:
        while True:
            remaining = deadline - time.monotonic()
            link = self.registry.get(peer_id)
            if link is not None and link.state is LinkState.OPEN:
                return link
            if remaining <= 0:
                raise PeerError(f"no open link to {peer_id} in time", code="peer_timeout", status=504)
            if link is not None and link.state is LinkState.CONNECTING:
                await link.wait_open(remaining)
                if link.state is not LinkState.OPEN and self.registry.get(peer_id) is link:
                    raise PeerError(f"link to {peer_id} failed: {link.reason}")
                continue
            async with self._changed:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._changed.wait(), min(remaining, 1.0))

    def _new_link(self, peer_id: str, direction: str) -> Link:
        link = Link(
            peer_id=peer_id,
            direction=direction,
            local_peer_id=self.identity.peer_id,
            local_url=self.local_url,
            settings=self.settings,
            on_message=self.delegate.link_message,
            on_probe=self.delegate.link_probe,
            on_state=self._on_link_state,
        )
        old = self.registry.add(link)
        if old is not None:
            self._spawn(old.close(CloseReason.REPLACED))
        self._spawn(link.watch_connect())
        self._notify()
        self.delegate.link_state_changed(link)
        return link

    async def _local_description(self, link: Link, kind: str) -> str:
        # held across the awaits: a link closed meanwhile (a glare's loser, replaced) lets go of its
        # peer connection, and its dial still ends the way a glare's loser's does (GlareLost, waits)
        pc = link.pc
        desc = await (pc.createOffer() if kind == "offer" else pc.createAnswer())
        await asyncio.wait_for(pc.setLocalDescription(desc), self.settings.connect_timeout)
        sdp = pc.localDescription.sdp
        if count_candidates(sdp) == 0:
            raise NoCandidatesError(self._no_candidates_reason())
        return sdp

    def _no_candidates_reason(self) -> str:
        """aioice drops a TURN server's 401 silently, so name the likely cause from the configuration."""
        turn = [
            url
            for server in self.settings.ice_servers
            for url in ([server["urls"]] if isinstance(server["urls"], str) else server["urls"])
            if url.startswith(("turn:", "turns:"))
        ]
        if turn:
            only = " and --ice-relay-only allows no other candidate" if self.settings.relay_only else ""
            return (
                f"no ICE candidates: the TURN server {', '.join(turn)} granted no allocation (wrong "
                f"username/credential, or unreachable){only}"
            )
        return (
            "no ICE candidates: this host has only loopback addresses; give it a non-loopback "
            "interface or a TURN server (--ice-servers)"
        )

    async def _connect_outbound(self, link: Link, url: str, *, via: str | None = None) -> None:
        sdp = await self._local_description(link, "offer")
        offer = sign_description(self.identity, "offer", sdp, link.peer_id, self.local_url)
        self._pending[offer.nonce] = link
        try:
            if via:
                answer = await self.client.post_offer(via, offer.to_json(), path="/api/mesh-rtc/offer")
            else:
                answer = await self.client.post_offer(url, offer.to_json())
            if link.state is LinkState.CONNECTING and offer.nonce in self._pending:
                await self._apply_answer(link, offer.nonce, answer)
        finally:
            self._pending.pop(offer.nonce, None)

    async def _apply_answer(self, link: Link, nonce: str, data: Any) -> None:
        try:
            answer = SignedDescription.from_json(data, "answer")
            verify_description(answer, me=self.identity.peer_id, nonces=self.nonces)
            if answer.from_peer != link.peer_id:
                raise PolicyError(f"answer signed by {answer.from_peer}, expected {link.peer_id}")
            if answer.offer_nonce != nonce:
                raise PolicyError("answer does not sign this offer's nonce")
            validate_sdp(answer.sdp, allow_ip=self.policy.allows_ip)
        except (SignalingError, SdpError, PolicyError) as exc:
            raise PeerError(f"bad answer from {link.peer_id}: {exc.detail}") from exc
        self.nonces.add(answer.nonce, time.time())
        await link.pc.setRemoteDescription(RTCSessionDescription(answer.sdp, "answer"))

    async def handle_answer(self, data: Any) -> None:
        """An answer that came back through a relay: completes this node's pending offer."""
        answer = SignedDescription.from_json(data, "answer")
        link = self._pending.pop(answer.offer_nonce or "", None)
        if link is None:
            raise NotFoundError("no pending offer of this node matches that answer's offer_nonce")
        try:
            await self._apply_answer(link, answer.offer_nonce or "", data)
        except PeerError as exc:
            raise PolicyError(exc.detail) from exc

    # -- signaling through the mesh --------------------------------------------------------

    async def _connect_via_mesh(self, link: Link, relays: list[str]) -> None:
        """Offer through each relay in turn until one brings back an answer; refusals name the reason."""
        link.signaling = "mesh"
        sdp = await self._local_description(link, "offer")
        reasons = []
        for relay in relays:
            relay_link = self.registry.get(relay)
            if relay_link is None or relay_link.state is not LinkState.OPEN:
                continue
            offer = sign_description(self.identity, "offer", sdp, link.peer_id, self.local_url)
            waiter: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
            self._mesh_waits[offer.nonce] = (relay, waiter)
            try:
                await relay_link.send(relay_envelope(link.peer_id, self.identity.peer_id, offer.to_json()))
                reply = await asyncio.wait_for(
                    waiter, min(self.settings.connect_timeout, MESH_REPLY_TIMEOUT_S)
                )
            except (TimeoutError, F0MeshError) as exc:
                reasons.append(f"{relay}: {getattr(exc, 'detail', None) or 'no reply in time'}")
                continue
            finally:
                self._mesh_waits.pop(offer.nonce, None)
            if "error" in reply:
                if reply["error"] == "glare":
                    raise GlareLost(str(reply.get("detail", "glare")))
                reasons.append(f"{relay}: {reply['error']}: {str(reply.get('detail', ''))[:200]}")
                continue
            if link.state is LinkState.CONNECTING:
                await self._apply_answer(link, offer.nonce, reply["desc"])
            return
        raise PeerError(
            f"no relay brought an answer from {link.peer_id}: {'; '.join(reasons) or 'none open'}"
        )

    def mesh_reply(self, via: str, message: dict[str, Any]) -> bool:
        """An answer or refusal for one of this node's relayed offers; False if none waits for it."""
        nonce = message.get("re") if "error" in message else None
        if nonce is None:
            desc = message.get("desc")
            nonce = desc.get("offer_nonce") if isinstance(desc, dict) else None
        wait = self._mesh_waits.get(nonce) if isinstance(nonce, str) else None
        if wait is None or wait[0] != via or wait[1].done():
            return False
        wait[1].set_result(message)
        return True

    async def handle_mesh_offer(self, data: Any) -> dict[str, Any]:
        """An offer that came over ctl through a relay: answered exactly as over HTTP."""
        answer = await self.handle_offer(data)
        link = self.registry.get(answer["to"])
        if link is not None:
            link.signaling = "mesh"
        return answer

    # -- answering -------------------------------------------------------------------------

    async def handle_offer(self, data: Any) -> dict[str, Any]:
        """Validate everything before creating anything: a refused offer leaves no trace."""
        offer = SignedDescription.from_json(data, "offer")
        verify_description(offer, me=self.identity.peer_id, nonces=self.nonces)
        validate_sdp(offer.sdp, allow_ip=self.policy.allows_ip, require_candidates=False)
        peer_id = offer.from_peer
        self.registry.check_offer(peer_id, blocked=self.delegate.peer_blocked(peer_id))
        self.nonces.add(offer.nonce, time.time())
        link = self._new_link(peer_id, "in")
        if offer.from_url:
            link.remote_url = offer.from_url
        try:
            await asyncio.wait_for(
                link.pc.setRemoteDescription(RTCSessionDescription(offer.sdp, "offer")),
                self.settings.connect_timeout,
            )
            sdp = await self._local_description(link, "answer")
        except F0MeshError as exc:
            await self._discard(link, CloseReason.SETUP_FAILED, exc.detail)
            raise
        except Exception as exc:
            await self._discard(link, CloseReason.SETUP_FAILED, f"{type(exc).__name__}: {exc}")
            raise SdpError(f"the WebRTC stack refused the offer: {type(exc).__name__}") from exc
        answer = sign_description(
            self.identity, "answer", sdp, peer_id, self.local_url, offer_nonce=offer.nonce
        )
        return answer.to_json()

    async def _discard(self, link: Link, cause: CloseReason, detail: str | None = None) -> None:
        await link.fail(cause, detail)
        if self.registry.discard(link):
            self._notify()

    # -- closing and redialling ------------------------------------------------------------

    async def close_link(
        self,
        peer_id: str,
        cause: CloseReason | str = CloseReason.OPERATOR,
        detail: str | None = None,
        *,
        hold: bool = True,
    ) -> bool:
        """Close for good: the peer is no longer wanted, so it is not redialled until dialled again.

        ``hold`` (an operator's close) also refuses the peer's own offers until this node dials it
        again: otherwise a peer that missed the bye would simply redial and undo the close. A string
        ``cause`` must be one of the reasons' values.
        """
        self.registry.close_for_good(peer_id, hold=hold)
        task = self._redials.pop(peer_id, None)
        if task:
            task.cancel()
        link = self.registry.get(peer_id)
        if link is None or not link.live:
            return False
        await link.close(CloseReason(cause), detail, bye=True, final=True)
        return True

    def release(self, peer_id: str) -> None:
        """Accept this peer's offers again (the hold of an operator's close or block is lifted)."""
        self.registry.release(peer_id)

    def _on_link_state(self, link: Link) -> None:
        self._notify()
        self.delegate.link_state_changed(link)
        redial = self.registry.changed(link)
        if link.state is LinkState.OPEN and link.remote_url:
            self.delegate.peer_learned(link.peer_id, link.remote_url)
        if redial and not self._stopping:
            self._schedule_redial(link.peer_id)

    def _schedule_redial(self, peer_id: str) -> None:
        if peer_id in self._redials and not self._redials[peer_id].done():
            return
        task = self._tasks.spawn(self._redial(peer_id), name=f"redial {peer_id}")
        if task is not None:
            self._redials[peer_id] = task

    async def _redial(self, peer_id: str) -> None:
        """Wait out the registry's backoff and dial; when it gives up, the peer is left to the
        connection manager, which finds it again through peer exchange if it comes back."""
        while self.registry.is_wanted(peer_id) and not self._stopping:
            delay = self.registry.redial_delay(peer_id, time.monotonic())
            if delay is None:
                log.info("stopped redialling %s after %.0f s", peer_id, self.registry.params.redial_give_up_s)
                return
            await asyncio.sleep(delay)
            if self.registry.has_live(peer_id):
                return
            url = self.registry.wanted_url(peer_id) or self.delegate.peer_url(peer_id)
            if url is None and not self.delegate.mesh_relays(peer_id):
                return
            try:
                await self.dial(peer_id, url, gated=True)
                return
            except F0MeshError as exc:
                log.info("redial of %s failed (%s)", peer_id, exc.detail)

    def collect(self, closed_before: float) -> int:
        """Forget links that failed or closed before ``closed_before`` (wall clock); returns how many."""
        for peer_id, task in list(self._redials.items()):
            if task.done():
                del self._redials[peer_id]
        return self.registry.collect(closed_before)

    def _notify(self) -> None:
        async def notify() -> None:
            async with self._changed:
                self._changed.notify_all()

        self._spawn(notify())

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        self._tasks.spawn(coro)

    async def stop(self) -> None:
        self._stopping = True
        for task in self._redials.values():
            task.cancel()
        await asyncio.gather(
            *(lk.close(CloseReason.STOPPING, bye=True) for lk in self.registry.links()),
            return_exceptions=True,
        )
        await self._tasks.close(STOP_TASKS_S, grace=0)
        self._redials.clear()
