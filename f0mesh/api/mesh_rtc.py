"""The signaling API: dial by PeerId, forward signed SDP to a peer's worker, list links."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Depends, Path

from f0mesh.api.auth import require_admin
from f0mesh.api.models import PEER_ID_PATTERN, MeshDialRequest
from f0mesh.api.views import dial_reply, link_view
from f0mesh.api.worker import get_node
from f0mesh.errors import NotFoundError
from f0mesh.node import Node
from f0mesh.rtc.signaling import SignedDescription

router = APIRouter(prefix="/api/mesh-rtc", tags=["mesh-rtc"])


@router.get("/links")
async def links(node: Node = Depends(get_node)) -> dict[str, Any]:
    """The current link per peer, with its QoS (null until measured)."""
    return {"links": [link_view(link, sample) for link, sample in node.link_samples()]}


@router.delete("/links/{peer_id}", dependencies=[Depends(require_admin)])
async def close_link(
    peer_id: str = Path(pattern=PEER_ID_PATTERN), node: Node = Depends(get_node)
) -> dict[str, Any]:
    """Close the link and do not redial until dialled again."""
    if not await node.close_link(peer_id):
        raise NotFoundError(f"no live link to {peer_id}")
    return {"ok": True, "peer_id": peer_id}


@router.post("/dial", dependencies=[Depends(require_admin)])
async def mesh_dial(body: MeshDialRequest, node: Node = Depends(get_node)) -> dict[str, Any]:
    return dial_reply(await node.dial(peer_id=body.target))


@router.post("/offer")
async def forward_offer(payload: Any = Body(...), node: Node = Depends(get_node)) -> dict[str, Any]:
    """Relay a signed offer to its target's worker (10 s timeout) and return the signed answer."""
    offer = SignedDescription.from_json(payload, "offer")
    if offer.to_peer == node.peer_id:
        return await node.signaling.take_offer(payload)
    return await node.signaling.forward("offer", offer.to_peer, payload)


@router.post("/answer")
async def forward_answer(payload: Any = Body(...), node: Node = Depends(get_node)) -> dict[str, Any]:
    """Relay a signed answer to the worker of the peer whose offer it answers."""
    answer = SignedDescription.from_json(payload, "answer")
    if answer.to_peer == node.peer_id:
        await node.signaling.take_answer(payload)
    else:
        await node.signaling.forward("answer", answer.to_peer, payload)
    return {"ok": True}
