"""Vector clocks: per-node counters that tell causally ordered states apart from concurrent ones."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

Ordering = Literal["before", "after", "equal", "concurrent"]


def _check_entry(node: object, value: object) -> None:
    if not isinstance(node, str):
        raise TypeError(f"vector clock node must be a str, not {type(node).__name__}")
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"vector clock counter for {node!r} must be an int, not {type(value).__name__}")
    if value < 0:
        raise ValueError(f"vector clock counter for {node!r} must be >= 0, got {value}")


class VectorClock:
    """Mutable map node -> counter where a missing node counts as 0.

    Zero entries are never stored, so two clocks that mean the same thing compare and serialise equal.
    """

    __slots__ = ("_entries",)
    __hash__ = None  # type: ignore[assignment]  # mutable

    def __init__(self, entries: Mapping[str, int] | None = None) -> None:
        self._entries: dict[str, int] = {}
        for node, value in (entries or {}).items():
            _check_entry(node, value)
            if value:
                self._entries[node] = value

    def get(self, node: str) -> int:
        return self._entries.get(node, 0)

    def increment(self, node: str) -> int:
        """Count one more event at `node`; returns the new counter."""
        _check_entry(node, 0)
        value = self._entries.get(node, 0) + 1
        self._entries[node] = value
        return value

    def merge(self, other: VectorClock) -> None:
        """Pointwise max, in place: afterwards self has seen everything either side had."""
        for node, value in other._entries.items():
            if value > self._entries.get(node, 0):
                self._entries[node] = value

    def compare(self, other: VectorClock) -> Ordering:
        """How self relates to other: "before" means other has seen all of self and more."""
        le = all(value <= other.get(node) for node, value in self._entries.items())
        ge = all(value <= self.get(node) for node, value in other._entries.items())
        if le and ge:
            return "equal"
        if le:
            return "before"
        if ge:
            return "after"
        return "concurrent"

    def dominates(self, other: VectorClock) -> bool:
        """True when self has seen everything other has (equal clocks dominate each other)."""
        return all(value <= self.get(node) for node, value in other._entries.items())

    def nodes(self) -> list[str]:
        return sorted(self._entries)

    def copy(self) -> VectorClock:
        clone = VectorClock()
        clone._entries = dict(self._entries)
        return clone

    def to_dict(self) -> dict[str, int]:
        """Sorted by node, so equal clocks serialise to equal bytes."""
        return dict(sorted(self._entries.items()))

    @classmethod
    def from_dict(cls, entries: Mapping[str, int]) -> VectorClock:
        if not isinstance(entries, Mapping):
            raise TypeError(f"expected a mapping, not {type(entries).__name__}")
        return cls(entries)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, VectorClock):
            return NotImplemented
        return self._entries == other._entries

    def __repr__(self) -> str:
        return f"VectorClock({self.to_dict()!r})"
