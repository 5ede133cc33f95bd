"""RTCConfiguration from the operator's ``--ice-servers`` JSON.

aiortc's default RTCConfiguration() contacts a public STUN host; f0mesh always passes the
configured list, which is empty unless the operator gives one.
"""

from __future__ import annotations

from typing import Any

from aiortc import RTCConfiguration, RTCIceServer
from aiortc.rtcconfiguration import RTCIceTransportPolicy


def rtc_configuration(ice_servers: list[dict[str, Any]], *, relay_only: bool = False) -> RTCConfiguration:
    servers = [
        RTCIceServer(urls=s["urls"], username=s.get("username"), credential=s.get("credential"))
        for s in ice_servers
    ]
    policy = RTCIceTransportPolicy.RELAY if relay_only else RTCIceTransportPolicy.ALL
    return RTCConfiguration(iceServers=servers, iceTransportPolicy=policy)


def selected_pair(pc: Any) -> tuple[str | None, str | None]:
    """The nominated candidate pair as "host:port typ" strings, for operators; aiortc has no public API."""
    try:
        transport = pc.sctp.transport.transport
        pair = transport._connection._nominated.get(1)
    except AttributeError:
        return None, None
    if pair is None:
        return None, None
    local, remote = pair.local_candidate, pair.remote_candidate
    return (
        f"{local.host}:{local.port} {local.type}",
        f"{remote.host}:{remote.port} {remote.type}",
    )


_PATH_ORDER = ("relay", "srflx", "prflx", "host")


def path_kind(local: str | None, remote: str | None) -> str | None:
    """The link's path from its pair's candidate types: the most indirect side names it (any TURN
    candidate makes it ``relay``; a reflexive one means a NAT was crossed without a relay)."""
    if local is None or remote is None:
        return None
    types = {local.rsplit(" ", 1)[-1], remote.rsplit(" ", 1)[-1]}
    return next((kind for kind in _PATH_ORDER if kind in types), None)
