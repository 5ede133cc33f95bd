"""Trust scores, the trust graph, and this node's own opinions."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Path
from pydantic import Field

from f0mesh.api.auth import require_admin
from f0mesh.api.models import PEER_ID_PATTERN, Strict
from f0mesh.api.worker import get_node
from f0mesh.node import Node

router = APIRouter(tags=["trust"])


class TrustOpinion(Strict):
    weight: float = Field(ge=0.0, le=1.0, description="0 = distrust (no edge), 1 = full trust")


@router.get("/api/trust")
async def trust(node: Node = Depends(get_node)) -> dict[str, Any]:
    return node.keeper.view()


@router.put("/api/trust/{peer_id}", dependencies=[Depends(require_admin)])
async def set_trust(
    body: TrustOpinion, peer_id: str = Path(pattern=PEER_ID_PATTERN), node: Node = Depends(get_node)
) -> dict[str, Any]:
    """This node's own opinion of a peer; it is published to the mesh on the ``trust`` topic."""
    await node.keeper.set_trust(peer_id, body.weight)
    return {"peer_id": peer_id, "weight": body.weight, "score": node.trust.scores().get(peer_id, 0.0)}
