"""The simulated network: regions and latencies, lossy links, and the partial view each peer keeps.

SimNetwork plays the part MemoryNetwork plays in the engine's tests (same GossipTransport interface,
same msgpack round trip), but a message reaches the other end after a one-way latency in virtual
time: half the inter-region round trip, plus each end's access (last-mile) delay, plus a little
per-message jitter. Each direction of a link is an ordered channel, as the reliable DataChannel is:
a message never overtakes an earlier one, and the receiver handles them one at a time.

Loss drops a whole transport message (a batch of envelopes, an ack, an IHAVE) independently with
probability ``loss``, which is how Serf's model and MemoryNetwork count it. Over a real reliable
DataChannel packet loss becomes retransmission delay instead, so this is the pessimistic reading.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
from collections import Counter, deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import msgpack

from f0mesh.gossip.transport import GossipEndpoint, LinkClosedError

log = logging.getLogger(__name__)

REGIONS = ("us-east", "us-west", "eu-west", "ap-southeast", "sa-east")
# share of peers per region: a mesh of users, heavier where most users are
REGION_WEIGHTS = (0.30, 0.15, 0.30, 0.15, 0.10)
# round-trip times between cloud regions (ms), after public inter-region latency tables (e.g. cloudping):
# Virginia, Oregon, Ireland, Singapore, São Paulo; the diagonal is a metro round trip
RTT_MS = (
    (2.0, 65.0, 70.0, 215.0, 115.0),
    (65.0, 2.0, 125.0, 165.0, 180.0),
    (70.0, 125.0, 2.0, 170.0, 185.0),
    (215.0, 165.0, 170.0, 2.0, 325.0),
    (115.0, 180.0, 185.0, 325.0, 2.0),
)


@dataclass(frozen=True, slots=True)
class LatencyModel:
    """One-way delay = RTT(region a, region b) / 2 + access(a) + access(b) + jitter.

    Access delay is per peer (home broadband, Wi-Fi, mobile): lognormal around ``access_median_ms``.
    Jitter is per message, exponential; the channel stays ordered whatever it draws.
    """

    access_median_ms: float = 8.0
    access_sigma: float = 0.6  # lognormal shape: p90 ~ 2.2 x median
    jitter_mean_ms: float = 1.0
    rtt_ms: tuple[tuple[float, ...], ...] = RTT_MS
    region_weights: tuple[float, ...] = REGION_WEIGHTS

    def draw_region(self, rng: random.Random) -> int:
        return rng.choices(range(len(self.region_weights)), weights=self.region_weights)[0]

    def draw_access_s(self, rng: random.Random) -> float:
        return self.access_median_ms * math.exp(rng.gauss(0.0, self.access_sigma)) / 1000.0

    def base_s(self, region_a: int, region_b: int, access_a: float, access_b: float) -> float:
        return self.rtt_ms[region_a][region_b] / 2000.0 + access_a + access_b

    def jitter_s(self, rng: random.Random) -> float:
        return rng.expovariate(1000.0 / self.jitter_mean_ms) if self.jitter_mean_ms > 0 else 0.0


ZERO_LATENCY = LatencyModel(access_median_ms=0.0, jitter_mean_ms=0.0, rtt_ms=((0.0,),), region_weights=(1.0,))


class _Link:
    """One direction of a link: messages wait in ``in_flight`` (arrival time, bytes) in send order,
    land in ``inbox`` when due and are handled in order. One timer per link, for the head only:
    timers due at the same instant would fire in no guaranteed order."""

    __slots__ = ("drain", "dst", "in_flight", "inbox", "last_arrival", "latency", "open", "src", "timer")

    def __init__(self, src: str, dst: str, latency: float) -> None:
        self.src = src
        self.dst = dst
        self.latency = latency
        self.last_arrival = 0.0
        self.in_flight: deque[tuple[float, bytes]] = deque()
        self.timer: asyncio.TimerHandle | None = None
        self.inbox: deque[bytes] = deque()
        self.drain: asyncio.Task[None] | None = None  # the task handing inbox to the endpoint, if any
        self.open = True

    def close(self) -> None:
        self.open = False
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        self.in_flight.clear()
        self.inbox.clear()


class SimNetwork:
    """Links between simulated peers, on the running (virtual-time) loop.

    Counters: ``sent[type]`` transport messages handed to the network, ``envelopes`` envelope copies
    inside "msgs" messages, ``dropped`` lost to ``loss``, ``delivered`` handed to an endpoint, ``bytes``.
    """

    def __init__(
        self,
        *,
        latency: LatencyModel | None = None,
        loss: float = 0.0,
        rng: random.Random | None = None,
        max_message_bytes: int = 1 << 20,
    ) -> None:
        if not 0.0 <= loss < 1.0:
            raise ValueError("loss must be in [0, 1)")
        self.latency = latency or LatencyModel()
        self.loss = loss
        self.max_message_bytes = max_message_bytes
        self._rng = rng or random.Random()
        self._endpoints: dict[str, GossipEndpoint] = {}
        self._links: dict[tuple[str, str], _Link] = {}
        self._adjacent: dict[str, set[str]] = {}
        self._sorted: dict[str, list[str]] = {}
        self.region: dict[str, int] = {}
        self.access: dict[str, float] = {}
        self.sent: Counter[str] = Counter()
        self.envelopes = 0
        self.dropped = 0
        self.delivered = 0
        self.bytes = 0

    # peers and links

    def add_peer(self, peer_id: str, region: int | None = None, access_s: float | None = None) -> None:
        """Place a peer (drawn from the latency model unless given); links need both ends placed."""
        self.region[peer_id] = self.latency.draw_region(self._rng) if region is None else region
        self.access[peer_id] = self.latency.draw_access_s(self._rng) if access_s is None else access_s
        self._adjacent.setdefault(peer_id, set())

    def transport(self, peer_id: str) -> SimTransport:
        return SimTransport(self, peer_id)

    def attach(self, peer_id: str, endpoint: GossipEndpoint) -> None:
        self._endpoints[peer_id] = endpoint

    def detach(self, peer_id: str) -> None:
        self._endpoints.pop(peer_id, None)

    def neighbours(self, peer_id: str) -> list[str]:
        cached = self._sorted.get(peer_id)
        if cached is None:
            cached = self._sorted[peer_id] = sorted(self._adjacent.get(peer_id, ()))
        return list(cached)

    def degree(self, peer_id: str) -> int:
        return len(self._adjacent.get(peer_id, ()))

    def linked(self, a: str, b: str) -> bool:
        return (a, b) in self._links

    def one_way_s(self, a: str, b: str) -> float:
        """The link's base one-way delay (without jitter)."""
        return self.latency.base_s(self.region[a], self.region[b], self.access[a], self.access[b])

    def link(self, a: str, b: str) -> bool:
        """Open a link without telling the endpoints (for building a topology before they start)."""
        if a == b or (a, b) in self._links:
            return False
        delay = self.one_way_s(a, b)
        self._links[(a, b)] = _Link(a, b, delay)
        self._links[(b, a)] = _Link(b, a, delay)
        for x, y in ((a, b), (b, a)):
            self._adjacent[x].add(y)
            self._sorted.pop(x, None)
        return True

    async def connect(self, a: str, b: str) -> None:
        """Open a link and tell both attached endpoints, as MemoryNetwork.connect does."""
        if not self.link(a, b):
            return
        for here, there in ((a, b), (b, a)):
            endpoint = self._endpoints.get(here)
            if endpoint is not None:
                await endpoint.on_neighbour_up(there)

    async def disconnect(self, a: str, b: str) -> None:
        """Close a link; what is in flight or queued on it is lost, as on a dead connection."""
        found = False
        for key in ((a, b), (b, a)):
            link = self._links.pop(key, None)
            if link is not None:
                found = True
                link.close()
                self._adjacent[key[0]].discard(key[1])
                self._sorted.pop(key[0], None)
        if not found:
            return
        for here, there in ((a, b), (b, a)):
            endpoint = self._endpoints.get(here)
            if endpoint is not None:
                await endpoint.on_neighbour_down(there)

    async def isolate(self, peer_id: str) -> list[str]:
        """Close every link of a peer; returns the peers it was linked to."""
        others = self.neighbours(peer_id)
        for other in others:
            await self.disconnect(peer_id, other)
        return others

    def edges(self) -> list[tuple[str, str]]:
        return sorted((a, b) for (a, b) in self._links if a < b)

    # messages

    async def _send(self, src: str, dst: str, message: dict[str, Any]) -> None:
        link = self._links.get((src, dst))
        if link is None:
            raise LinkClosedError(f"no link {src} -> {dst}")
        raw = msgpack.packb(message, use_bin_type=True)
        if len(raw) > self.max_message_bytes:
            raise ValueError(f"message of {len(raw)} bytes exceeds the link's {self.max_message_bytes}")
        kind = str(message.get("type"))
        self.sent[kind] += 1
        self.bytes += len(raw)
        if kind == "msgs":
            self.envelopes += len(message.get("msgs") or ())
        if self.loss and self._rng.random() < self.loss:
            self.dropped += 1
            return
        loop = asyncio.get_running_loop()
        arrival = max(loop.time() + link.latency + self.latency.jitter_s(self._rng), link.last_arrival)
        link.last_arrival = arrival
        link.in_flight.append((arrival, raw))
        if link.timer is None:
            link.timer = loop.call_at(arrival, self._arrive, link)

    def _arrive(self, link: _Link) -> None:
        link.timer = None
        if not link.open:
            return
        loop = asyncio.get_running_loop()
        due = loop.time() + 1e-9  # the loop fires a timer up to its clock resolution early
        while link.in_flight and link.in_flight[0][0] <= due:
            link.inbox.append(link.in_flight.popleft()[1])
        if link.in_flight:
            link.timer = loop.call_at(link.in_flight[0][0], self._arrive, link)
        if link.inbox and link.drain is None:
            link.drain = loop.create_task(self._drain(link))

    async def _drain(self, link: _Link) -> None:
        try:
            while link.inbox and link.open:
                raw = link.inbox.popleft()
                endpoint = self._endpoints.get(link.dst)
                if endpoint is None:
                    continue
                try:
                    await endpoint.on_message(link.src, msgpack.unpackb(raw, raw=False))
                    self.delivered += 1
                except Exception:
                    log.exception("endpoint %s failed on a message from %s", link.dst, link.src)
        finally:
            link.drain = None

    def counters(self) -> dict[str, int]:
        return {
            "transport_messages": sum(self.sent.values()),
            "envelopes": self.envelopes,
            "acks": self.sent["ack"],
            "ihave": self.sent["ihave"],
            "iwant": self.sent["iwant"],
            "dropped": self.dropped,
            "bytes": self.bytes,
        }


class SimTransport:
    """One peer's view of a SimNetwork; satisfies GossipTransport."""

    __slots__ = ("_network", "peer_id")

    def __init__(self, network: SimNetwork, peer_id: str) -> None:
        self._network = network
        self.peer_id = peer_id

    def neighbours(self) -> list[str]:
        return self._network.neighbours(self.peer_id)

    async def send(self, peer_id: str, message: dict[str, Any]) -> None:
        await self._network._send(self.peer_id, peer_id, message)


# topology


@dataclass(frozen=True, slots=True)
class Degree:
    """The connection manager's degree bounds (rtc.connection_manager.DegreeParams)."""

    d_lo: int = 4
    d: int = 6
    d_hi: int = 12


def partial_view(n: int, rng: random.Random, degree: Degree | None = None) -> list[tuple[int, int]]:
    """Edges of the mesh the connection managers would build: each peer dials random peers until it
    holds ``d`` links, never pushing another above ``d_hi``; islands are then joined by bridge dials.

    Peers that dial late also receive links from others, so degrees spread over about d..2d.
    """
    degree = degree or Degree()
    adjacent: list[set[int]] = [set() for _ in range(n)]
    order = list(range(n))
    rng.shuffle(order)
    want, d_hi, limit, draw = min(degree.d, n - 1), degree.d_hi, 50 * degree.d, rng.randrange
    for node in order:
        mine = adjacent[node]
        attempts = 0
        while len(mine) < want and attempts < limit:
            attempts += 1
            other = draw(n)
            if other == node or other in mine or len(adjacent[other]) >= d_hi:
                continue
            mine.add(other)
            adjacent[other].add(node)
    _bridge(adjacent, rng)
    return sorted((a, b) for a in range(n) for b in adjacent[a] if a < b)


def _bridge(adjacent: list[set[int]], rng: random.Random) -> None:
    """Join every island to the largest one with one link (the connection manager's bridge dial)."""
    components = components_of(adjacent)
    if len(components) <= 1:
        return
    main = max(components, key=len)
    members = sorted(main)
    for component in components:
        if component is main:
            continue
        a = min(component)
        b = rng.choice(members)
        adjacent[a].add(b)
        adjacent[b].add(a)


def components_of(adjacent: Sequence[Iterable[int]], nodes: Iterable[int] | None = None) -> list[set[int]]:
    """Connected components (of the subgraph on ``nodes`` if given), by breadth-first search."""
    allowed = set(range(len(adjacent))) if nodes is None else set(nodes)
    seen: set[int] = set()
    out: list[set[int]] = []
    for start in sorted(allowed):
        if start in seen:
            continue
        component = {start}
        queue = deque([start])
        while queue:
            node = queue.popleft()
            for other in adjacent[node]:
                if other in allowed and other not in component:
                    component.add(other)
                    queue.append(other)
        seen |= component
        out.append(component)
    return out


def hop_distances(adjacent: Sequence[Iterable[int]], source: int) -> dict[int, int]:
    """Shortest path lengths from source (the fewest hops any message could take)."""
    dist = {source: 0}
    queue = deque([source])
    while queue:
        node = queue.popleft()
        for other in adjacent[node]:
            if other not in dist:
                dist[other] = dist[node] + 1
                queue.append(other)
    return dist
