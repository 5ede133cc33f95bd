"""IDONTWANT (GossipSub v1.2): a neighbour that already holds a large message asks not to be sent it.

On the first receipt of an envelope of at least ``idontwant_min_bytes`` a node tells its mesh peers
of the topic (the ones that would otherwise push it a duplicate) the id, except those it pushes the
envelope to: its copy follows on the same ordered link a moment later and says the same, and each
IDONTWANT was one more SCTP packet for every large message; each neighbour's ids are remembered up to
``max_idontwant_ids``, oldest forgotten first, and for as long as the link lives. A push skips the
neighbours that asked; an IWANT is still answered (an explicit request wins). The ids ride an empty
ack (``"dontwant"``), a key a previous wire version ignores, so no message kind is added.
"""

from __future__ import annotations

from collections import OrderedDict


class DontWant:
    def __init__(self, max_ids_per_peer: int) -> None:
        self._max = max_ids_per_peer
        self._by_peer: dict[str, OrderedDict[str, None]] = {}

    def add(self, peer: str, ids: list[str]) -> None:
        held = self._by_peer.setdefault(peer, OrderedDict())
        for message_id in ids:
            held[message_id] = None
            held.move_to_end(message_id)
        while len(held) > self._max:
            held.popitem(last=False)

    def peers(self, message_id: str) -> set[str]:
        """The neighbours that asked not to be sent this message."""
        return {peer for peer, held in self._by_peer.items() if message_id in held}

    def forget(self, peer: str) -> None:
        self._by_peer.pop(peer, None)
