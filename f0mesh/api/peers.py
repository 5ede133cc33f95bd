"""The peer registry."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query

from f0mesh.api.auth import require_admin
from f0mesh.api.models import PeerAdd
from f0mesh.api.worker import get_node
from f0mesh.node import Node

router = APIRouter(tags=["peers"])


@router.get("/api/peers")
async def list_peers(
    limit: int = Query(1000, ge=1, le=10000), node: Node = Depends(get_node)
) -> dict[str, Any]:
    return {"peers": await node.list_peers(limit)}


@router.post("/api/peers", dependencies=[Depends(require_admin)])
async def add_peer(body: PeerAdd, node: Node = Depends(get_node)) -> dict[str, Any]:
    """Learn a peer from its URL's /healthz and store it."""
    return await node.add_peer(body.url)
