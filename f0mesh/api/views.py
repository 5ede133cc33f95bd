"""The API's views of the node's objects, each built in one place: a peer, a link, a /dial reply."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from f0mesh.config import valid_name
from f0mesh.qos.sampler import Sample
from f0mesh.rtc.ice import path_kind
from f0mesh.rtc.link import Link


def peer_view(
    row: Mapping[str, Any],
    scores: Mapping[str, float],
    telemetry: Mapping[str, Any],
    linked: set[str],
    tags: Mapping[str, str],
    topics: list[str],
) -> dict[str, Any]:
    """A mesh_peers row with the live score, the name its own signed telemetry gives, its link, and the
    tags and topics of its verified record (no topics: every topic, or not said)."""
    peer_id = row["peer_id"]
    name = telemetry.get(peer_id, {}).get("name")
    return {
        "peer_id": peer_id,
        "name": name if valid_name(name) else None,
        "url": row.get("url"),
        "trust": scores.get(peer_id, row.get("trust")),  # live, not last saved
        "last_seen": row.get("last_seen"),
        "linked": peer_id in linked,
        "blocked": bool(row.get("blocked")),
        "tags": dict(tags),
        "topics": topics,
    }


def link_view(link: Link, sample: Sample | None) -> dict[str, Any]:
    """A link with its latest QoS figures (null until measured) and its ICE path."""
    local, remote = link.ice_pair()
    return {
        "link_id": link.link_id,
        "peer_id": link.peer_id,
        "state": link.state.value,
        "health": sample.health if sample else "unknown",
        "rtt_ms": sample.rtt_ms if sample else None,
        "jitter_ms": sample.jitter_ms if sample else None,
        "loss_pct": sample.loss_pct if sample else None,
        "bitrate_kbps": sample.bitrate_kbps if sample else None,
        "updated_at": sample.at if sample else (link.closed_at or link.opened_at or link.created_at),
        "direction": link.direction,
        "setup_ms": link.setup_ms,
        "reason": link.reason,
        "ice": {"local": local, "remote": remote},
        "path": path_kind(local, remote),
        "signaling": link.signaling,
        "browser": link.browser,
    }


def dial_reply(link: Link) -> dict[str, Any]:
    """What /dial and /api/mesh-rtc/dial answer once both channels are open."""
    return {
        "link_id": link.link_id,
        "peer_id": link.peer_id,
        "state": link.state.value,
        "setup_ms": link.setup_ms,
    }
