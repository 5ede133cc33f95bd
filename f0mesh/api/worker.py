"""The peer-facing worker: /healthz, /dial, /offer, /answer."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Depends, Request

from f0mesh.api.auth import require_admin
from f0mesh.api.models import DialRequest
from f0mesh.api.views import dial_reply
from f0mesh.node import Node

router = APIRouter(tags=["worker"])


async def get_node(request: Request) -> Node:
    return request.app.state.node


@router.get("/healthz")
async def healthz(node: Node = Depends(get_node)) -> dict[str, Any]:
    return node.health()


@router.post("/dial", dependencies=[Depends(require_admin)])
async def dial(body: DialRequest, node: Node = Depends(get_node)) -> dict[str, Any]:
    """Link to a peer by URL or PeerId; answers once both channels are open (an existing link as is)."""
    return dial_reply(await node.dial(url=body.url, peer_id=body.peer_id))


@router.post("/offer")
async def offer(payload: Any = Body(...), node: Node = Depends(get_node)) -> dict[str, Any]:
    """A signed offer in, the signed answer out; the signature is the authentication."""
    return await node.signaling.take_offer(payload)


@router.post("/answer")
async def answer(payload: Any = Body(...), node: Node = Depends(get_node)) -> dict[str, Any]:
    """Completes a pending offer of this node whose answer travelled through a relay."""
    await node.signaling.take_answer(payload)
    return {"ok": True}
