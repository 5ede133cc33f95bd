"""The dashboard: the page at ``/``, its static assets, a favicon, and QoS history for its charts.

The page is plain HTML, CSS and ES modules from ``f0mesh/dashboard/static``; a strict
Content-Security-Policy allows nothing but this origin, so a gossiped payload rendered on the
page can never run as script.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Path, Query
from fastapi.responses import FileResponse, Response

from f0mesh.api.models import PEER_ID_PATTERN
from f0mesh.api.worker import get_node
from f0mesh.dashboard import STATIC_DIR, assets
from f0mesh.errors import NotFoundError
from f0mesh.node import Node

router = APIRouter()

ASSET_PREFIX = "/dashboard/"
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
SAMPLE_FIELDS = (
    "link_id",
    "at",
    "health",
    "rtt_ms",
    "rtt_p95_ms",
    "jitter_ms",
    "loss_pct",
    "bitrate_kbps",
    "tx_kbps",
    "rx_kbps",
    "probes_sent",
    "probes_lost",
)


def _headers(cache: str) -> dict[str, str]:
    return {
        "Cache-Control": cache,
        "Content-Security-Policy": CSP,
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "X-Frame-Options": "DENY",
    }


def _file(name: str, cache: str) -> FileResponse:
    media_type = assets().get(name)
    if media_type is None:
        raise NotFoundError(f"no dashboard asset named {name!r}")
    return FileResponse(STATIC_DIR / name, media_type=media_type, headers=_headers(cache))


@router.get("/", include_in_schema=False)
async def index() -> FileResponse:
    return _file("index.html", "no-store")


@router.get("/favicon.ico", include_in_schema=False)
@router.get("/favicon.svg", include_in_schema=False)
async def favicon() -> FileResponse:
    return _file("favicon.svg", "public, max-age=86400")


@router.get(ASSET_PREFIX + "{name}", include_in_schema=False)
async def asset(name: str = Path(max_length=64, pattern=r"^[A-Za-z0-9_-]+\.[a-z]+$")) -> Response:
    # no-cache: the browser revalidates (ETag), so an upgraded node never runs stale modules.
    return _file(name, "no-cache")


@router.get("/api/mesh-rtc/links/{peer_id}/samples", tags=["mesh-rtc"])
async def link_samples(
    peer_id: str = Path(pattern=PEER_ID_PATTERN),
    limit: int = Query(300, ge=1, le=10000, description="the newest samples, returned oldest first"),
    since: float = Query(0.0, ge=0.0, description="only samples taken at or after this Unix time"),
    link_id: str | None = Query(None, max_length=64, description="only samples of this link"),
    node: Node = Depends(get_node),
) -> dict[str, Any]:
    """QoS history of this node's links to one peer (the ``link_samples`` time series), oldest first."""
    rows = await node.samples(peer_id=peer_id, link_id=link_id, since=since, limit=limit)
    return {"peer_id": peer_id, "samples": [{k: r.get(k) for k in SAMPLE_FIELDS} for r in rows]}
