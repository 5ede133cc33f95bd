"""The node's gossip topics as the API shows and changes them: subscriptions and per-topic meshes.

The engine owns both (gossip/topics.py, gossip/topic_mesh.py); this service turns its answers into
the API's views and its refusals into the API's errors, so node.py only builds it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from f0mesh.errors import ConflictError, F0MeshError, NotFoundError
from f0mesh.gossip import GossipEngine
from f0mesh.gossip.topics import TooManyTopics


class Topics:
    def __init__(self, gossip: GossipEngine, scores: Callable[[], Mapping[str, float]]) -> None:
        self._gossip = gossip
        self._scores = scores

    def subscriptions(self) -> dict[str, Any]:
        """Own topics, system ones, and what each neighbour announced (null: never, so everything)."""
        subs = self._gossip.subscriptions
        neighbours = {peer: subs.of(peer) for peer in sorted(self._gossip.mesh.linked())}
        return {"topics": subs.own, "system": sorted(subs.always), "neighbours": neighbours}

    async def join(self, topic: str) -> dict[str, Any]:
        try:
            await self._gossip.join(topic)
        except TooManyTopics as exc:
            raise ConflictError(str(exc), code="too_many_topics") from exc
        except ValueError as exc:
            raise F0MeshError(str(exc), code="bad_topic", status=422) from exc
        return self.subscriptions()

    def carries(self, topic: str) -> bool:
        """Whether this node takes the topic's messages now (by name, ``*`` or as a system topic)."""
        return self._gossip.subscriptions.subscribed(topic)

    async def leave(self, topic: str) -> dict[str, Any]:
        try:
            left = await self._gossip.leave(topic)
        except ValueError as exc:
            raise ConflictError(str(exc), code="system_topic") from exc
        if not left:
            raise NotFoundError(f"not subscribed to {topic[:128]!r}")
        return self.subscriptions()

    def mesh(self) -> dict[str, Any]:
        """``{topic: {"peers": [{"peer_id", "score", "trust"}]}}`` for each topic's mesh; a topic this
        node only publishes to shows its fanout set, marked ``"fanout": true``. ``score`` is the
        peer's trust score (0 when unscored) until gossip peer scores exist."""
        scores = self._scores()
        mesh = self._gossip.mesh

        def rows(peers: set[str]) -> list[dict[str, Any]]:
            trusts = {p: scores.get(p, 0.0) for p in peers}
            return [{"peer_id": p, "score": trusts[p], "trust": trusts[p]} for p in sorted(peers)]

        view: dict[str, Any] = {topic: {"peers": rows(peers)} for topic, (peers, _) in mesh.fanout.items()}
        for entry in view.values():
            entry["fanout"] = True
        view.update({topic: {"peers": rows(peers)} for topic, peers in mesh.meshes.items()})
        return dict(sorted(view.items()))
