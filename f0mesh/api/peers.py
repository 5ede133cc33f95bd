"""The peer registry."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Path, Query

from f0mesh.api.auth import require_admin
from f0mesh.api.models import PEER_ID_PATTERN, PeerAdd
from f0mesh.api.views import peer_view
from f0mesh.api.worker import get_node
from f0mesh.node import Node

router = APIRouter(tags=["peers"])


def _views(node: Node, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    scores, linked = node.trust.scores(), node.linked_peers()
    book, heard = node.book, node.telemetry.received
    return [
        peer_view(row, scores, heard, linked, book.tags(row["peer_id"]), book.topics(row["peer_id"]))
        for row in rows
    ]


@router.get("/api/peers")
async def list_peers(
    limit: int = Query(1000, ge=1, le=10000), node: Node = Depends(get_node)
) -> dict[str, Any]:
    return {"peers": _views(node, await node.list_peers(limit))}


@router.post("/api/peers", dependencies=[Depends(require_admin)])
async def add_peer(body: PeerAdd, node: Node = Depends(get_node)) -> dict[str, Any]:
    """Learn a peer from its URL's /healthz and store it."""
    return _views(node, [await node.add_peer(body.url)])[0]


@router.post("/api/peers/{peer_id}/block", dependencies=[Depends(require_admin)])
async def block_peer(
    peer_id: str = Path(pattern=PEER_ID_PATTERN), node: Node = Depends(get_node)
) -> dict[str, Any]:
    """Refuse this peer everywhere (offers, dials, peer exchange, gossip) and close its link."""
    await node.set_blocked(peer_id, True)
    return {"peer_id": peer_id, "blocked": True}


@router.delete("/api/peers/{peer_id}/block", dependencies=[Depends(require_admin)])
async def unblock_peer(
    peer_id: str = Path(pattern=PEER_ID_PATTERN), node: Node = Depends(get_node)
) -> dict[str, Any]:
    await node.set_blocked(peer_id, False)
    return {"peer_id": peer_id, "blocked": False}
