"""A closed link keeps its figures for the registry's retention but lets go of its peer connection."""

from __future__ import annotations

import gc
import weakref

import pytest
from bare_link import bare_link

from f0mesh.rtc.close_reason import CloseReason
from f0mesh.rtc.framing import ChannelClosed
from f0mesh.rtc.link import LinkState


async def test_a_closed_link_lets_go_of_its_peer_connection_and_keeps_its_figures() -> None:
    link = bare_link()
    pc, ctl, probe = weakref.ref(link.pc), weakref.ref(link.ctl), weakref.ref(link.probe)
    await link.close(CloseReason.PRUNED)
    gc.collect()
    # an hour in the registry (--stranger-retention) must not keep ~260 kB of SCTP, DTLS and ICE state
    assert pc() is None and ctl() is None and probe() is None
    assert link.state is LinkState.CLOSED and link.reason == "pruned: above D_hi"
    assert link.describe()["state"] == "closed" and link.ice_pair() == (None, None) and link.path is None
    assert (link.bytes_sent, link.bytes_received) == (0, 0)
    assert link.send_probe(b"ping") is False
    with pytest.raises(ChannelClosed):
        await link.send({"t": "hb"})
    with pytest.raises(ChannelClosed):
        link.pc  # noqa: B018 - signaling that races a close gets the mesh's own error
    await link.close(CloseReason.PRUNED)  # idempotent, as before
