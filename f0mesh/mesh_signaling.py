"""Signaling through this node: offers and answers over HTTP, and the ``sig`` ctl kind of the mesh.

Over HTTP a node takes offers for itself (``/offer``; a private node refuses them) and forwards signed
descriptions to a peer's worker (``/api/mesh-rtc/offer``). A peer without a reachable URL
(``--no-public-url``, behind NAT) is dialled with its offer carried over a neighbour's ``ctl``
channel. As a relay this node forwards only what SignalRelay admits (the last hop is the carrying
link, signature, freshness, nonce, a way to the target, token buckets) and only replies along offers
it forwarded. Without a link to the target a relay passes the offer on to the neighbour closest to
it by the mesh's telemetry, while the offer has passed fewer than ``MAX_RELAYS`` relays. As a target
this node answers at most ``MESH_OFFERS_ANSWERING`` relayed offers at a time. A refused offer is
answered with a refusal back along its path so its dialler stops waiting.
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
from f0mesh.identity import is_peer_id
from f0mesh.log_throttle import LogThrottle
from f0mesh.metrics import NodeMetrics
from f0mesh.peer_book import PeerBook
from f0mesh.rtc.link import LinkState
from f0mesh.rtc.link_manager import LinkManager
from f0mesh.rtc.relay import (
    MAX_RELAYS,
    RelayRefused,
    SignalRelay,
    hops,
    last_hop,
    offer_nonce,
    parse,
    refusal,
)
from f0mesh.rtc.relay_routes import RouteMap
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
        self._routes = RouteMap(telemetry)
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
        """A relayed offer, answer or refusal: for this node, or to forward towards its target."""
        try:
            to, sender = parse(message)
            if to == self.own_id:
                self._deliver(peer_id, sender, message)
                return
            desc = message.get("desc")
            if isinstance(desc, dict) and desc.get("type") == "offer":
                via = hops(message)
                after = self._next_hop(to, MAX_RELAYS - len(via) - 1, {sender, peer_id, *via})
                self.relay.offer(peer_id, to, message, after)
                assert after is not None
                hop, outgoing = after, {**message, "via": [*via, self.own_id]}
            else:
                hop, outgoing = self.relay.reply(peer_id, to, message), message
            link = self._links.get(hop)
            if link is None or link.state is not LinkState.OPEN:
                raise RelayRefused(f"this relay has no open link to {hop}", code="no_route")
            await asyncio.wait_for(link.send(outgoing), RELAY_SEND_TIMEOUT_S)
        except F0MeshError as exc:
            self._refused(peer_id, message, exc)
        except (TimeoutError, ConnectionError) as exc:
            self._refused(peer_id, message, RelayRefused(f"forwarding failed: {type(exc).__name__}"))

    def _next_hop(self, to: str, relays_after: int, exclude: set[str]) -> str | None:
        """The target if linked, else the neighbour closest to it within ``relays_after`` more relays."""
        target = self._links.get(to)
        if target is not None and target.state is LinkState.OPEN:
            return to
        if relays_after <= 0:
            return None
        among = [
            lk.peer_id for lk in self._links.open_links() if lk.peer_id not in exclude and not lk.browser
        ]
        near = self._routes.nearest(to, self._book.relays(to), relays_after, set(among))
        return next((peer for peer in among if peer in near), None)

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
        nonce, origin = offer_nonce(message), message.get("from")
        known = isinstance(origin, str) and len(origin) <= 64 and is_peer_id(origin)
        if nonce is not None and known and last_hop(message) == peer_id and "desc" in message:
            reply = refusal(origin, self.own_id, nonce, exc.code, exc.detail)
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
        """Neighbours to try as first relay to ``peer_id``: those it names, then those closest to it by
        the mesh's telemetry (within ``MAX_RELAYS`` links), then the others; at most ``MESH_RELAY_TRIES``."""
        named = self._book.relays(peer_id)
        among = [lk.peer_id for lk in self._links.open_links() if lk.peer_id != peer_id and not lk.browser]
        near = self._routes.nearest(peer_id, named, MAX_RELAYS, set(among))
        rank = {peer: (peer not in named, peer not in near) for peer in among}
        return sorted(among, key=rank.__getitem__)[:MESH_RELAY_TRIES]
