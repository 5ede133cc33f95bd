"""Named starting points for a node's settings, as memberlist has LAN, WAN and Local configs.

A profile maps NodeConfig paths (``degree.d_lo`` is DegreeParams.d_lo) to values; ``f0mesh up
--profile NAME`` starts from it and the flags given override it. The dataclass defaults are the
profile of a node on its own machine among a few dozen peers.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

# A few nodes, often on one machine (the demo up to 12, tests): QoS and telemetry fast enough to
# show figures within seconds.
SMALL: Mapping[str, Any] = MappingProxyType({"qos_interval": 3.0, "probe_rate": 2.0, "gossip_interval": 20.0})

# Many nodes on one 2-core host (the demo above 12, bench's gossip mesh): calmer rates, a longer
# heartbeat timeout and a lower degree, or the processes starve each other and links fail. A probe
# costs four SCTP packets (ping, pong and a SACK for each) per side and was the largest item of an
# idle link after gossip: one every 4 s still puts 5 in each 20 s QoS sample, and the peer's pings
# and pongs reach a quiet link every 2-4 s, well inside the 12 s heartbeat timeout. Each registry
# refresh is a state message every node receives ~3 copies of: every 120 s still refreshes each
# entry twice within the 300 s after which a silent peer is marked gone.
LARGE: Mapping[str, Any] = MappingProxyType(
    {
        "qos_interval": 20.0,
        "probe_rate": 0.25,
        "gossip_interval": 60.0,
        "peer_refresh_s": 120.0,
        "heartbeat_timeout": 12.0,
        "degree.d_lo": 3,
        "degree.d_target": 4,
        "degree.d_hi": 6,
    }
)

PROFILES: Mapping[str, Mapping[str, Any]] = MappingProxyType({"small": SMALL, "large": LARGE})
