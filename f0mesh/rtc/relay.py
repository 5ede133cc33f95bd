"""Signaling through the mesh: signed offers and answers carried over ``ctl`` by relays.

A private node serves no ``/offer``; a dialler reaches it through a relay, a peer linked to both, or
when no neighbour is common through a short chain of relays (at most ``MAX_RELAYS``). The envelope is
``{"t": "sig", "to": P, "from": Q, "desc": <signed offer or answer JSON>, "via": [relays passed]}``
(or ``"error"`` and ``"re"``, the offer's nonce, for a refusal). The description is signed end to end
exactly as HTTP signaling signs it, so a relay forwards bytes it cannot alter undetected. Every relay
on the path still checks what it cheaply can before forwarding (the envelope's last hop is the link
it arrived on, the signature, freshness, a nonce it has not forwarded before, its token buckets) so
that it never lends its links to forged or replayed traffic, and it keeps no state beyond a bounded
map of in-flight offers: an answer or a refusal is forwarded only back along an offer it forwarded,
to the hop that offer came from, so replies retrace the offer's path.
"""

from __future__ import annotations

import time
from collections import Counter, OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from f0mesh.errors import F0MeshError
from f0mesh.identity import is_peer_id
from f0mesh.rtc.signaling import NonceCache, SignedDescription, verify_description
from f0mesh.trust.rate_limit import TokenBucket

SIG_FRAME = "sig"
MAX_SDP_CHARS = 32 * 1024
MAX_DETAIL_CHARS = 300
# Relays an offer may pass through: one is a common neighbour; more serve peers that share none.
MAX_RELAYS = 3


class RelayRefused(F0MeshError):
    """A relayed signaling message this node does not forward or accept; ``code`` names why."""

    code = "relay_refused"
    status = 403


@dataclass(frozen=True)
class RelayLimits:
    per_peer_rate: float = 2.0
    per_peer_burst: float = 10.0
    total_rate: float = 20.0
    total_burst: float = 60.0
    max_peers: int = 256
    max_in_flight: int = 256
    in_flight_ttl_s: float = 30.0
    max_nonces: int = 4096


@dataclass(frozen=True)
class Forward:
    """One offer forwarded: replies travel from ``next`` back to ``prev`` and nowhere else."""

    origin: str
    prev: str
    target: str
    next: str
    expires: float


def envelope(to: str, sender: str, desc: dict[str, Any]) -> dict[str, Any]:
    return {"t": SIG_FRAME, "to": to, "from": sender, "desc": desc}


def refusal(to: str, sender: str, nonce: str, error: str, detail: str) -> dict[str, Any]:
    return {
        "t": SIG_FRAME,
        "to": to,
        "from": sender,
        "re": nonce,
        "error": error[:64],
        "detail": detail[:MAX_DETAIL_CHARS],
    }


def parse(message: dict[str, Any]) -> tuple[str, str]:
    """(to, from) of a well-formed envelope, or RelayRefused."""
    to, sender = message.get("to"), message.get("from")
    if not (isinstance(to, str) and is_peer_id(to) and isinstance(sender, str) and is_peer_id(sender)):
        raise RelayRefused("signaling envelope without a valid 'to' and 'from'", code="malformed")
    via = message.get("via", [])
    if not (
        isinstance(via, list)
        and len(via) <= MAX_RELAYS
        and all(isinstance(p, str) and is_peer_id(p) for p in via)
        and len(set(via)) == len(via)
        and to not in via
        and sender not in via
    ):
        raise RelayRefused(
            f"'via' is not a list of at most {MAX_RELAYS} distinct relays' PeerIds", code="malformed"
        )
    if ("desc" in message) == ("error" in message):
        raise RelayRefused(
            "signaling envelope carries neither or both of 'desc' and 'error'", code="malformed"
        )
    if "error" in message and not (isinstance(message.get("re"), str) and isinstance(message["error"], str)):
        raise RelayRefused("refusal envelope without 're' and 'error' strings", code="malformed")
    return to, sender


def hops(message: dict[str, Any]) -> list[str]:
    """The relays a parsed envelope passed, in order."""
    return list(message.get("via", []))


def last_hop(message: dict[str, Any]) -> Any:
    """Who must have sent this envelope over the link it arrived on: its last relay, else its sender."""
    via = message.get("via")
    return via[-1] if isinstance(via, list) and via else message.get("from")


def offer_nonce(message: dict[str, Any]) -> str | None:
    """The nonce a refusal of this envelope refers to, if it names a usable one."""
    desc = message.get("desc")
    nonce = desc.get("nonce") if isinstance(desc, dict) else None
    return nonce if isinstance(nonce, str) and 0 < len(nonce) <= 64 else None


def description(message: dict[str, Any]) -> SignedDescription:
    desc = message["desc"]
    kind = desc.get("type") if isinstance(desc, dict) else None
    if kind not in ("offer", "answer"):
        raise RelayRefused("'desc' is not a signed offer or answer", code="malformed")
    signed = SignedDescription.from_json(desc, kind)
    if len(signed.sdp) > MAX_SDP_CHARS:
        raise RelayRefused(f"SDP longer than {MAX_SDP_CHARS} characters", code="too_large")
    return signed


class SignalRelay:
    """The forwarding decisions of one node acting as a relay; the node moves the bytes."""

    def __init__(
        self, limits: RelayLimits | None = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.limits = limits or RelayLimits()
        self._clock = clock
        self._buckets: OrderedDict[str, TokenBucket] = OrderedDict()
        self._total = TokenBucket(self.limits.total_rate, self.limits.total_burst, clock=clock)
        self._in_flight: OrderedDict[str, Forward] = OrderedDict()
        self.nonces = NonceCache(max_entries=self.limits.max_nonces)
        self.stats: Counter[str] = Counter()

    def in_flight(self) -> int:
        return len(self._in_flight)

    def tracked_peers(self) -> int:
        return len(self._buckets)

    def refused(self, reason: str) -> None:
        self.stats[f"refused_{reason}"] += 1

    def admit(self, source: str) -> None:
        """Charge one offer to ``source`` (relayed, or delivered here from a neighbour), or raise."""
        self._charge(source)

    def _charge(self, source: str) -> None:
        bucket = self._buckets.get(source)
        if bucket is None:
            bucket = TokenBucket(self.limits.per_peer_rate, self.limits.per_peer_burst, clock=self._clock)
            self._buckets[source] = bucket
            while len(self._buckets) > self.limits.max_peers:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(source)
        if not bucket.try_take():
            raise RelayRefused(
                f"more than {self.limits.per_peer_rate:g} relayed offers/s from this peer",
                code="rate_limited",
            )
        if not self._total.try_take():
            raise RelayRefused("this relay forwards no more offers right now", code="rate_limited")

    def _expire(self) -> None:
        now = self._clock()
        while self._in_flight:
            nonce, forward = next(iter(self._in_flight.items()))
            if forward.expires > now:
                break
            del self._in_flight[nonce]

    def offer(self, source: str, to: str, message: dict[str, Any], next_hop: str | None) -> None:
        """Admit an offer from the link of ``source`` for ``to``, to forward to ``next_hop`` (the
        target or the next relay towards it; None if this relay knows no way), or raise. Each hop
        charges the carrying peer and the offer's origin; admitted offers are remembered briefly."""
        origin = message.get("from")
        if last_hop(message) != source:
            raise RelayRefused(
                "a relayed offer's last hop must be the peer whose link carried it", code="forged_source"
            )
        if not isinstance(origin, str):
            raise RelayRefused("signaling envelope without a 'from'", code="malformed")
        self._charge(source)
        if origin != source:
            self._charge(origin)
        if next_hop is None:
            raise RelayRefused(f"this relay has no way to {to}", code="no_route")
        offer = description(message)
        if offer.type != "offer" or offer.from_peer != origin or offer.to_peer != to:
            raise RelayRefused("the signed offer's peers differ from the envelope's", code="forged_source")
        self._expire()
        if len(self._in_flight) >= self.limits.max_in_flight:
            raise RelayRefused("too many relayed offers in flight", code="rate_limited")
        try:
            verify_description(offer, me=to, nonces=self.nonces)
        except F0MeshError as exc:
            raise RelayRefused(exc.detail, code=exc.code) from exc
        now = time.time()
        self.nonces.add(offer.nonce, now)
        expires = self._clock() + self.limits.in_flight_ttl_s
        self._in_flight[offer.nonce] = Forward(origin, source, to, next_hop, expires)
        self.stats["forwarded_offer"] += 1

    def reply(self, source: str, to: str, message: dict[str, Any]) -> str:
        """Admit an answer or a refusal travelling back along an offer this relay forwarded; returns
        the hop to send it to. An answer comes from the target; a refusal from any hop after this one."""
        self._expire()
        sender = message.get("from")
        if "error" in message:
            nonce = message["re"]
        else:
            answer = description(message)
            if answer.type != "answer" or answer.from_peer != sender or answer.to_peer != to:
                raise RelayRefused(
                    "the signed answer's peers differ from the envelope's", code="forged_source"
                )
            nonce = answer.offer_nonce or ""
        forward = self._in_flight.get(nonce)
        if (
            forward is None
            or forward.next != source
            or forward.origin != to
            or ("desc" in message and forward.target != sender)
        ):
            raise RelayRefused("no offer in flight through this relay matches that reply", code="unsolicited")
        if "desc" in message:
            try:
                verify_description(answer, me=to, nonces=self.nonces)
            except F0MeshError as exc:
                raise RelayRefused(exc.detail, code=exc.code) from exc
            self.nonces.add(answer.nonce, time.time())
        del self._in_flight[nonce]
        self.stats["forwarded_reply"] += 1
        return forward.prev
