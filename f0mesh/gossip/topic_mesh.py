"""A mesh per topic (GossipSub): the neighbours every new message of that topic is pushed to at once.

Trust decides who is in a mesh, not who gets a given message: below d_lo the node GRAFTs by trust
roulette (with a floor, so new honest peers still get in) up to d among the neighbours subscribed
to the topic; above d_hi it PRUNEs the least trusted down to d. A PRUNE carries a backoff (neither
side grafts the other for that topic until it ends) and PX, a few well-trusted neighbours of the
topic the pruned peer may link to (a receiver checks it but does not act on it yet: bare ids, no
records to dial them by). A GRAFT is refused with a PRUNE for a topic this node does not take,
during a backoff, or at d_hi.

Publishing to a topic the node does not subscribe to goes to a fanout set picked the same way, kept
fanout_ttl_s after the last publish. With flood publishing (the default) own messages go to every
neighbour subscribed to the topic instead.

The system topics (telemetry, trust, state) have meshes of their own, lower degree (system_d_lo,
system_d, system_d_hi) and no flood publishing: their messages are periodic, not in a hurry, and
every node takes all of them, so on an idle node their copies were most of its packets. Repair
(IHAVE each heartbeat, the periodic round, state's anti-entropy) still closes any gap.

A neighbour of the previous wire version never GRAFTs: as before topics, one that pushes to this
node is taken in up to d, and one that asks for a young message (no push reached it) up to d_hi.
"""

from __future__ import annotations

import logging
import random
import time
from collections import OrderedDict
from collections.abc import Callable, Collection
from typing import Any

from f0mesh.gossip.errors import GossipReject, Reason
from f0mesh.gossip.params import GossipParams
from f0mesh.gossip.topics import MAX_TOPICS, Subscriptions, check_topics, is_topic
from f0mesh.identity import is_peer_id
from f0mesh.trust import select_peers, with_floor

log = logging.getLogger(__name__)

Scores = Callable[[], dict[str, float]]

MAX_MESHES = 256  # topics with a mesh at once; the least recently used is left past it
MAX_PX = 16  # peers a PRUNE may carry
MAX_BACKOFF_S = 3600.0  # the longest backoff a peer's PRUNE may ask for
MAX_BACKOFFS = 10_000


def check_prunes(value: Any) -> list[tuple[str, float, list[str]]]:
    """A PRUNE list ``[[topic, backoff_s, [peer id, ...]], ...]``, clamped, or GossipReject(malformed)."""
    if not isinstance(value, list) or len(value) > MAX_TOPICS:
        raise GossipReject(Reason.MALFORMED, f"prune must be a list of at most {MAX_TOPICS} entries")
    out = []
    for entry in value:
        if not (
            isinstance(entry, list)
            and len(entry) == 3
            and is_topic(entry[0])
            and isinstance(entry[1], int | float)
            and not isinstance(entry[1], bool)
            and isinstance(entry[2], list)
            and len(entry[2]) <= MAX_PX
            and all(is_peer_id(p) for p in entry[2])
        ):
            raise GossipReject(Reason.MALFORMED, "prune entries are [topic, backoff seconds, [peer ids]]")
        backoff = float(entry[1]) if entry[1] == entry[1] else 0.0  # NaN: none
        out.append((entry[0], min(max(backoff, 0.0), MAX_BACKOFF_S), list(entry[2])))
    return out


class TopicMesh:
    def __init__(
        self,
        params: GossipParams,
        neighbours: Callable[[], list[str]],
        scores: Scores,
        rng: random.Random,
        subscriptions: Subscriptions,
        *,
        on_control: Callable[[], None] = lambda: None,
        now: Callable[[], float] = time.monotonic,
        score: Callable[[str], float] = lambda peer: 0.0,
    ) -> None:
        """``on_control``: GRAFT/PRUNE were queued (take them with take_control); ``score(peer)``:
        its gossip score (score.py): a negative one leaves every mesh at the next heartbeat, is not
        grafted, and has its GRAFT refused (GossipSub v1.1)."""
        self._params = params
        self._neighbours = neighbours
        self._scores = scores
        self._rng = rng
        self._subs = subscriptions
        self._on_control = on_control
        self._now = now
        self._score = score
        self.meshes: OrderedDict[str, set[str]] = OrderedDict()
        self.fanout: dict[str, tuple[set[str], float]] = {}  # topic -> (peers, time of the last publish)
        self._backoff: OrderedDict[tuple[str, str], float] = OrderedDict()  # (topic, peer) -> until
        self._control: dict[str, dict[str, list[Any]]] = {}
        # topic -> the stamp (see _stamp) at which a fill left its mesh below d_lo for want of
        # candidates: targets() does not look again, once per envelope, until something changed
        self._unfillable: dict[str, int] = {}
        self._epoch = 0

    # who gets a message

    def degrees(self, topic: str) -> tuple[int, int, int]:
        """(d_lo, d, d_hi) of a topic: the system topics' own, lower ones, or the user topics'."""
        p = self._params
        if topic in self._subs.always:
            return p.system_d_lo, p.system_d, p.system_d_hi
        return p.d_lo, p.d, p.d_hi

    def targets(self, topic: str, excluded: Collection[str]) -> list[str]:
        """The topic's mesh peers not excluded, grafting first if too few are left."""
        mesh = self._mesh(topic)
        if len(mesh) < self.degrees(topic)[0] and self._unfillable.get(topic) != self._stamp():
            self._fill(topic, mesh)
        return sorted(p for p in mesh if p not in excluded)

    def publish_targets(self, topic: str) -> list[str]:
        """Where an own message goes: every subscriber (flood; not for system topics, whose messages
        are not in a hurry), the mesh, or the fanout set."""
        if self._params.flood_publish and topic not in self._subs.always:
            return self.subscribers(topic)
        if self._subs.subscribed(topic):
            return self.targets(topic, ())
        peers, _ = self.fanout.get(topic, (set(), 0.0))
        subscribers = self.subscribers(topic)
        peers &= set(subscribers)
        if len(peers) < self._params.d:
            peers |= set(self.rank([p for p in subscribers if p not in peers], self._params.d - len(peers)))
        self.fanout[topic] = (peers, self._now())
        return sorted(peers)

    def linked(self) -> list[str]:
        return self._neighbours()

    def subscribers(self, topic: str) -> list[str]:
        return [p for p in self._neighbours() if self._subs.wants(p, topic)]

    def audience(self, topic: str) -> tuple[list[str], list[str]]:
        """The topic's subscribers outside its mesh (the heartbeat's IHAVE goes there first), and inside."""
        mesh = self.meshes.get(topic, set())
        subscribers = self.subscribers(topic)
        return [p for p in subscribers if p not in mesh], [p for p in subscribers if p in mesh]

    def members(self) -> set[str]:
        """Every peer in some topic mesh."""
        return set().union(*self.meshes.values())

    def in_mesh(self, peer: str) -> bool:
        return any(peer in mesh for mesh in self.meshes.values())

    # upkeep, each heartbeat

    def changed(self) -> None:
        """Neighbours came or went: a mesh short of d_lo looks for candidates again."""
        self._epoch += 1

    def maintain(self) -> None:
        """Per topic: drop gone or unsubscribed peers, graft below d_lo, prune above d_hi."""
        self.changed()  # backoffs expire and scores move between heartbeats
        now = self._now()
        while self._backoff and next(iter(self._backoff.values())) <= now:
            self._backoff.popitem(last=False)
        for topic in [t for t, (_, last) in self.fanout.items() if now - last > self._params.fanout_ttl_s]:
            del self.fanout[topic]
        for topic in self._subs.named():
            if topic not in self.meshes:
                self._mesh(topic)
        for topic, mesh in list(self.meshes.items()):
            if not self._subs.subscribed(topic):
                self.leave(topic)
                continue
            wanted = set(self.subscribers(topic))
            mesh.intersection_update(wanted)
            for peer in sorted(p for p in mesh if self._score(p) < 0):
                self._prune(topic, peer, px=False)
            d_lo, d, d_hi = self.degrees(topic)
            if len(mesh) < d_lo:
                self._fill(topic, mesh)
            elif len(mesh) > d_hi:
                keep = set(self._by_trust(sorted(mesh))[:d])
                for peer in sorted(mesh - keep):
                    self._prune(topic, peer)

    def leave(self, topic: str) -> None:
        """No longer subscribed: PRUNE every mesh peer of the topic."""
        self._unfillable.pop(topic, None)
        for peer in sorted(self.meshes.pop(topic, set())):
            self._prune(topic, peer, px=False)

    def maintain_peer(self, peer: str, *, first: bool) -> None:
        """A neighbour announced new subscriptions: out of the meshes of topics it left. On its
        ``first`` announcement, the meshes it was put in while taken for an old node GRAFT it now."""
        for topic, mesh in self.meshes.items():
            if peer not in mesh:
                continue
            if not self._subs.wants(peer, topic):
                mesh.discard(peer)
            elif first:
                self._queue(peer, "graft", topic)

    def remove(self, peer: str) -> None:
        self.changed()
        for mesh in self.meshes.values():
            mesh.discard(peer)
        for peers, _ in self.fanout.values():
            peers.discard(peer)

    # control from a neighbour

    def on_graft(self, peer: str, raw: Any) -> None:
        for topic in check_topics(raw):
            # a mesh for a topic taken only by the wildcard is made for a GRAFT only while there is
            # room: a neighbour grafting made-up topics must not evict the meshes in use
            unknown = topic not in self.meshes and not self._subs.is_named(topic)
            if (
                not self._subs.subscribed(topic)
                or self._backed_off(topic, peer)
                or (unknown and len(self.meshes) >= MAX_MESHES)
                or self._score(peer) < 0
            ):
                self._prune(topic, peer, px=False)
                continue
            mesh = self._mesh(topic)
            if peer in mesh:
                continue
            if len(mesh) >= self.degrees(topic)[2]:
                self._prune(topic, peer)
            else:
                mesh.add(peer)

    def on_prune(self, peer: str, raw: Any) -> None:
        """Leaves the peer out of the meshes it pruned us from, for the backoff it asked (at least
        ours). The PX it offers is checked and not acted on: bare peer ids, no signed records to
        dial them by (GossipSub v1.1 lets a node ignore PX too)."""
        for topic, backoff, _ in check_prunes(raw):
            mesh = self.meshes.get(topic)
            if mesh is not None:
                mesh.discard(peer)
            self._back_off(topic, peer, max(backoff, self._params.prune_backoff_s))

    def pushed_by(self, peer: str, topic: str) -> None:
        """A neighbour of the previous wire version pushed to this node: reciprocate, up to d."""
        if self._subs.speaks_topics(peer) or not self._subs.subscribed(topic):
            return
        mesh = self._mesh(topic)
        if peer not in mesh and len(mesh) < self.degrees(topic)[1]:
            mesh.add(peer)

    def missed(self, peer: str, topic: str) -> None:
        """A neighbour of the previous wire version asked for a young message: push to it, up to d_hi."""
        if self._subs.speaks_topics(peer) or not self._subs.subscribed(topic):
            return
        mesh = self._mesh(topic)
        if peer not in mesh and len(mesh) < self.degrees(topic)[2]:
            mesh.add(peer)

    def take_control(self) -> dict[str, dict[str, list[Any]]]:
        """GRAFT/PRUNE queued per neighbour since the last call: ``{"graft": [...], "prune": [...]}``."""
        control, self._control = self._control, {}
        return control

    def rank(self, candidates: list[str], k: int) -> list[str]:
        """Up to k candidates by roulette over trust, with a floor so unscored ones get a chance."""
        try:
            weights = with_floor(self._scores(), candidates, self._params.floor_weight)
        except Exception:  # a broken score source must not stop delivery: fall back to uniform
            log.exception("gossip trust scores unavailable; choosing uniformly")
            weights = dict.fromkeys(candidates, 1.0)
        return select_peers(weights, k, self._rng)

    # helpers

    def _mesh(self, topic: str) -> set[str]:
        mesh = self.meshes.get(topic)
        if mesh is None:
            if len(self.meshes) >= MAX_MESHES:
                oldest = next(iter(self.meshes))
                self.leave(oldest)
            mesh = self.meshes[topic] = set()
        else:
            self.meshes.move_to_end(topic)
        return mesh

    def _fill(self, topic: str, mesh: set[str]) -> None:
        candidates = [
            p
            for p in self.subscribers(topic)
            if p not in mesh and not self._backed_off(topic, p) and self._score(p) >= 0
        ]
        for peer in self.rank(candidates, self.degrees(topic)[1] - len(mesh)) if candidates else []:
            mesh.add(peer)
            if self._subs.speaks_topics(peer):
                self._queue(peer, "graft", topic)
        # every candidate was taken (rank asks for d - len >= d_lo - len) and it was not enough
        if len(mesh) < self.degrees(topic)[0]:
            self._unfillable[topic] = self._stamp()
        else:
            self._unfillable.pop(topic, None)

    def _stamp(self) -> int:
        """Grows with every change of neighbours, subscriptions or heartbeat: both parts only grow."""
        return self._epoch + self._subs.version

    def _prune(self, topic: str, peer: str, *, px: bool = True) -> None:
        mesh = self.meshes.get(topic)
        if mesh is not None:
            mesh.discard(peer)
        backoff = self._params.prune_backoff_s
        self._back_off(topic, peer, backoff)
        if not self._subs.speaks_topics(peer):
            return
        offered: list[str] = []
        if px:
            others = [p for p in self.subscribers(topic) if p != peer]
            offered = self._by_trust(others)[: min(self._params.prune_px, MAX_PX)]
        self._queue(peer, "prune", [topic, backoff, offered])

    def _queue(self, peer: str, key: str, item: Any) -> None:
        first = not self._control
        entries = self._control.setdefault(peer, {}).setdefault(key, [])
        if len(entries) < MAX_TOPICS:
            entries.append(item)
        if first:
            self._on_control()

    def _back_off(self, topic: str, peer: str, seconds: float) -> None:
        key = (topic, peer)
        self._backoff.pop(key, None)
        # kept in expiry order as long as every backoff is the same length; a longer one a peer
        # asked for only expires late, never early
        self._backoff[key] = self._now() + seconds
        while len(self._backoff) > MAX_BACKOFFS:
            self._backoff.popitem(last=False)

    def _backed_off(self, topic: str, peer: str) -> bool:
        until = self._backoff.get((topic, peer))
        return until is not None and until > self._now()

    def _by_trust(self, peers: list[str]) -> list[str]:
        try:
            scores = self._scores()
        except Exception:
            scores = {}
        return sorted(peers, key=lambda p: (-scores.get(p, 0.0), p))
