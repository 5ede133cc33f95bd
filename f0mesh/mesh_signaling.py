"""Signaling through this node: offers and answers over HTTP, and the ``sig`` ctl kind of the mesh.

Over HTTP a node takes offers for itself (``/offer``; a private node refuses them) and forwards signed
descriptions to a peer's worker (``/api/mesh-rtc/offer``). A peer without a reachable URL
(``--no-public-url``, behind NAT) is dialled with its offer carried over a neighbour's ``ctl``
channel. As a relay this node forwards only what SignalRelay admits (source is the carrying link,
signature, freshness, nonce, an open link to the target, token buckets) and only replies along
offers it forwarded; as a target it answers at most ``MESH_OFFERS_ANSWERING`` relayed offers at a
time. A refused offer is answered with a refusal so its dialler stops waiting.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping
from typing import Any

from f0mesh.config import NodeConfig
from f0mesh.ctl import CtlKind
from f0mesh.errors import F0MeshError, NotFoundError, PolicyError
from f0mesh.log_throttle import LogThrottle
from f0mesh.metrics import NodeMetrics
from f0mesh.peer_book import PeerBook
from f0mesh.rtc.link import LinkState
from f0mesh.rtc.link_manager import LinkManager
from f0mesh.rtc.relay import RelayRefused, SignalRelay, offer_nonce, parse, refusal
from f0mesh.rtc.signaling_client import SignalingClient
from f0mesh.tasks import TaskSet

log = logging.getLogger(__name__)

# A dial through the mesh tries the relays a peer names (or that list it among their links) first,
# then other neighbours; each refuses quickly when it has no link to the peer.
MESH_RELAY_TRIES = 4
MESH_OFFERS_ANSWERING = 8
RELAY_SEND_TIMEOUT_S = 5.0
# refusals that only a misbehaving sender earns: its behaviour score pays
VIOLATIONS = frozenset({"malformed", "forged_source", "bad_signature", "wrong_target", "replay"})


class MeshSignaling:
    def __init__(
        self,
        config: NodeConfig,
        own_id: str,
        links: LinkManager,
        book: PeerBook,
        client: SignalingClient,
        metrics: NodeMetrics,
        tasks: TaskSet,
        *,
        telemetry: Mapping[str, dict[str, Any]],
        violated: Callable[[str, str], None],
    ) -> None:
        """``telemetry``: the summaries heard (who lists whom among its links)."""
        self.own_id = own_id
        self.private = config.no_public_url
        self._client = client
        self.relay = SignalRelay()
        self._links = links
        self._book = book
        self._metrics = metrics
        self._tasks = tasks
        self._telemetry = telemetry
        self._violated = violated
        self._answering = 0
        self._log = LogThrottle(log)

    async def take_offer(self, payload: Any) -> dict[str, Any]:
        """A signed offer for this node, over HTTP; a private node takes offers only through the mesh."""
        if self.private:
            raise PolicyError(
                "this node is private (--no-public-url): it takes offers only through the mesh",
                code="private_node",
            )
        return await self._links.handle_offer(payload)

    async def take_answer(self, payload: Any) -> None:
        """The answer to an offer of this node that travelled through a relay's worker."""
        await self._links.handle_answer(payload)

    async def forward(self, kind: str, peer_id: str, payload: Any) -> dict[str, Any]:
        """Post a signed offer or answer to its target's worker (only a peer with a public URL)."""
        url = self._book.url(peer_id)
        if url is None:
            raise NotFoundError(f"peer {peer_id} is not in this node's registry")
        post = self._client.post_offer if kind == "offer" else self._client.post_answer
        return await post(url, payload)

    async def on_ctl(self, peer_id: str, message: dict[str, Any]) -> None:
        """A relayed offer, answer or refusal: for this node, or to forward to a linked peer."""
        try:
            to, sender = parse(message)
            if to == self.own_id:
                self._deliver(peer_id, sender, message)
                return
            target = self._links.get(to)
            target_open = target is not None and target.state is LinkState.OPEN
            desc = message.get("desc")
            if isinstance(desc, dict) and desc.get("type") == "offer":
                self.relay.offer(peer_id, to, message, target_open)
            else:
                self.relay.reply(peer_id, to, message)
                if not target_open:
                    raise RelayRefused(f"this relay has no open link to {to}", code="no_route")
            assert target is not None
            await asyncio.wait_for(target.send(message), RELAY_SEND_TIMEOUT_S)
        except F0MeshError as exc:
            self._refused(peer_id, message, exc)
        except (TimeoutError, ConnectionError) as exc:
            self._refused(peer_id, message, RelayRefused(f"forwarding failed: {type(exc).__name__}"))

    def _refused(self, peer_id: str, message: dict[str, Any], exc: F0MeshError) -> None:
        self.relay.refused(exc.code)
        self._metrics.relay_refused.labels(reason=exc.code).inc()
        self._log.info(
            (peer_id, f"sig-{exc.code}"),
            "refused relayed signaling from %s: %s: %s",
            peer_id,
            exc.code,
            exc.detail,
        )
        if exc.code in VIOLATIONS:
            self._violated(peer_id, "sig")
        nonce = offer_nonce(message)
        if nonce is not None and message.get("from") == peer_id and "desc" in message:
            reply = refusal(peer_id, self.own_id, nonce, exc.code, exc.detail)
            self._tasks.spawn(self._send_quietly(peer_id, reply), name="sig-refusal")

    async def _send_quietly(self, peer_id: str, message: dict[str, Any]) -> None:
        link = self._links.get(peer_id)
        if link is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(link.send(message), RELAY_SEND_TIMEOUT_S)

    def _deliver(self, peer_id: str, sender: str, message: dict[str, Any]) -> None:
        desc = message.get("desc")
        if isinstance(desc, dict) and desc.get("type") == "offer":
            if desc.get("from") != sender:
                raise RelayRefused("the offer's signer is not the envelope's sender", code="forged_source")
            self.relay.admit(peer_id)
            if self._answering >= MESH_OFFERS_ANSWERING:
                raise RelayRefused("this node is answering too many relayed offers", code="rate_limited")
            self._answering += 1
            self._tasks.spawn(self._answer(peer_id, sender, desc), name="sig-answer")
        elif not self._links.mesh_reply(peer_id, message):
            raise RelayRefused("no relayed offer of this node waits for that reply", code="unsolicited")

    async def _answer(self, peer_id: str, sender: str, desc: dict[str, Any]) -> None:
        try:
            answer = await self._links.handle_mesh_offer(desc)
            reply = {"t": CtlKind.SIG.value, "to": sender, "from": self.own_id, "desc": answer}
        except F0MeshError as exc:
            self.relay.refused(exc.code)
            self._log.info(
                (sender, f"mesh-offer-{exc.code}"), "refused a relayed offer from %s: %s", sender, exc.detail
            )
            reply = refusal(sender, self.own_id, str(desc.get("nonce", ""))[:64], exc.code, exc.detail)
        finally:
            self._answering -= 1
        await self._send_quietly(peer_id, reply)

    def relays(self, peer_id: str) -> list[str]:
        """Neighbours to try as relays to ``peer_id``: those it names or that list it as linked, first."""
        named = self._book.relays(peer_id)
        for origin, summary in list(self._telemetry.items())[:1024]:
            links = summary.get("links")
            if isinstance(links, list) and any(
                isinstance(lk, dict) and lk.get("peer_id") == peer_id for lk in links[:256]
            ):
                named.add(origin)
        links = [lk for lk in self._links.open_links() if lk.peer_id != peer_id and not lk.browser]
        neighbours = [lk.peer_id for lk in links]
        ordered = [p for p in neighbours if p in named] + [p for p in neighbours if p not in named]
        return ordered[:MESH_RELAY_TRIES]
