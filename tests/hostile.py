"""The hostile peer shared by the attack tests: an in-process f0mesh ``Node`` and a real offer SDP.

The node has its own modules and identity but no HTTP server; a test links it to a real ``f0mesh up``
process over WebRTC and sends whatever it likes over that link. The reliability, relay and stranger
tests all build it here, so an attack test and the node it attacks never drift apart.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from aiortc import RTCPeerConnection

from f0mesh.config import NodeConfig
from f0mesh.node import Node

from nodes import free_port


@contextlib.asynccontextmanager
async def attacker_node(data_dir: Path, **config: Any) -> AsyncIterator[Node]:
    """A started in-process node (``config``: NodeConfig fields), stopped on exit."""
    node = Node(NodeConfig(data_dir=data_dir, port=free_port(), admin_token="attacker-token", **config))
    await node.start()
    try:
        yield node
    finally:
        await node.stop()


async def offer_sdp() -> str:
    """A well-formed offer SDP with the ``ctl`` data channel, as a dialling f0mesh node would send;
    tests sign it for identities of their choosing."""
    pc = RTCPeerConnection()
    try:
        pc.createDataChannel("ctl", negotiated=True, id=0)
        await pc.setLocalDescription(await pc.createOffer())
        return pc.localDescription.sdp
    finally:
        await pc.close()
