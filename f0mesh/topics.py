"""The node's gossip topics as the API shows and changes them: subscriptions, per-topic meshes and
publish policies.

The engine owns subscriptions and meshes (gossip/topics.py, gossip/topic_mesh.py), the replicated
state the publish policies (state/topic_policy.py); this service turns their answers into the API's
views and their refusals into the API's errors, so node.py only builds it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol

from f0mesh.errors import ConflictError, F0MeshError, NotFoundError
from f0mesh.gossip import GossipEngine
from f0mesh.gossip.topics import TooManyTopics


class PublishPolicies(Protocol):
    def topic_policies(self) -> list[dict[str, Any]]: ...

    async def set_topic_policy(self, topic: str, publishers: Iterable[str]) -> dict[str, Any]: ...


class Topics:
    def __init__(
        self,
        gossip: GossipEngine,
        scores: Callable[[], Mapping[str, float]],
        policies: Callable[[], PublishPolicies],
    ) -> None:
        """``policies()`` is the replicated state, built after this service."""
        self._gossip = gossip
        self._scores = scores
        self._policies = policies

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

    def policies(self) -> dict[str, Any]:
        return {"policies": self._policies().topic_policies()}

    async def set_policy(self, topic: str, publishers: list[str]) -> dict[str, Any]:
        """Declare who may publish to ``topic``; system topics are the node's own."""
        if topic in self._gossip.subscriptions.always:
            raise ConflictError(f"{topic!r} is a system topic", code="system_topic")
        return await self._policies().set_topic_policy(topic, publishers)

    def mesh(self) -> dict[str, Any]:
        """``{topic: {"peers": [{"peer_id", "score", "trust"}]}}`` for each topic's mesh; a topic this
        node only publishes to shows its fanout set, marked ``"fanout": true``. ``score`` is the
        peer's gossip score (gossip/score.py), ``trust`` its trust score (0 when unscored)."""
        scores = self._scores()
        mesh, score = self._gossip.mesh, self._gossip.score

        def rows(peers: set[str]) -> list[dict[str, Any]]:
            return [
                {"peer_id": p, "score": round(score.score(p), 6), "trust": scores.get(p, 0.0)}
                for p in sorted(peers)
            ]

        view: dict[str, Any] = {topic: {"peers": rows(peers)} for topic, (peers, _) in mesh.fanout.items()}
        for entry in view.values():
            entry["fanout"] = True
        view.update({topic: {"peers": rows(peers)} for topic, peers in mesh.meshes.items()})
        return dict(sorted(view.items()))
