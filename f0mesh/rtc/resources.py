"""What links may hold, in the spirit of libp2p's resource manager: limits per peer and in total.

Every link already bounds its own partial inbound messages (FramedChannel's reassembly limit), but
``max_links`` links each holding a full budget was 64 x 32 MiB in theory. The memory budget here is
shared by every link: a reservation must fit both the peer's share and the node's total, so many
strangers together cannot take more than one operator-chosen amount.
"""

from __future__ import annotations

from dataclasses import dataclass, field


class MemoryBudget:
    def __init__(self, total_bytes: int, per_peer_bytes: int) -> None:
        self.total_bytes = total_bytes
        self.per_peer_bytes = per_peer_bytes
        self.used = 0
        self._by_peer: dict[str, int] = {}
        self.refused = 0

    def reserve(self, peer_id: str, size: int) -> bool:
        held = self._by_peer.get(peer_id, 0)
        if size < 0 or self.used + size > self.total_bytes or held + size > self.per_peer_bytes:
            self.refused += 1
            return False
        self.used += size
        self._by_peer[peer_id] = held + size
        return True

    def release(self, peer_id: str, size: int) -> None:
        held = self._by_peer.get(peer_id, 0)
        size = min(size, held)
        self.used -= size
        if held - size > 0:
            self._by_peer[peer_id] = held - size
        else:
            self._by_peer.pop(peer_id, None)

    def held(self, peer_id: str) -> int:
        return self._by_peer.get(peer_id, 0)

    def scope(self, peer_id: str) -> MemoryScope:
        return MemoryScope(self, peer_id)


@dataclass(slots=True)
class MemoryScope:
    """One peer's view of the shared budget, handed to that peer's framing layer."""

    budget: MemoryBudget
    peer_id: str

    def reserve(self, size: int) -> bool:
        return self.budget.reserve(self.peer_id, size)

    def release(self, size: int) -> None:
        self.budget.release(self.peer_id, size)


@dataclass
class ResourceLimits:
    """The node's limits on what links cost; the link manager enforces links and pending offers."""

    max_links: int = 64
    max_pending_offers: int = 32
    reassembly_total_bytes: int = 256 << 20
    reassembly_per_peer_bytes: int = 32 << 20
    memory: MemoryBudget = field(init=False)

    def __post_init__(self) -> None:
        self.memory = MemoryBudget(self.reassembly_total_bytes, self.reassembly_per_peer_bytes)
