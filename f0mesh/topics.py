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

    async def leave(self, topic: str) -> dict[str, Any]:
        try:
            left = await self._gossip.leave(topic)
        except ValueError as exc:
            raise ConflictError(str(exc), code="system_topic") from exc
        if not left:
            raise NotFoundError(f"not subscribed to {topic[:128]!r}")
        return self.subscriptions()

    def mesh(self) -> dict[str, Any]:
        """Per topic, the mesh peers with their trust (0 when unscored); and the fanout sets."""
        scores = self._scores()
        mesh = self._gossip.mesh
        return {
            "topics": {
                topic: [{"peer_id": p, "trust": scores.get(p, 0.0)} for p in sorted(peers)]
                for topic, peers in sorted(mesh.meshes.items())
            },
            "fanout": {topic: sorted(peers) for topic, (peers, _) in sorted(mesh.fanout.items())},
        }
