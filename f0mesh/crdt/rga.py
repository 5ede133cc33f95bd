"""Replicated Growable Array (Roh et al., 2011): an ordered list that concurrent editors can all insert into.

Every element remembers the element it was inserted after; siblings sharing an anchor are ordered by id,
greatest first, and the list is a depth-first walk of that tree. The order therefore depends only on which
elements exist, never on the order they arrived in, and an element whose anchor has not arrived yet simply
waits, invisible, until it does.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Iterator
from typing import Any

from f0mesh.crdt.bounds import MAX_SEQ, SEQ_SLACK
from f0mesh.crdt.codec import check_value_bytes, pack_array, pack_value, unpack_value
from f0mesh.crdt.replicated import CounterError, OpId, Replicated
from f0mesh.crdt.vector_clock import VectorClock

UNDER_ANCHOR = "under-anchor"  # an element's place when it sits under its own anchor (the usual case)

RGAId = tuple[int, str]
"""(counter, replica_id). The counter is a Lamport clock: a new id is greater than every id its replica has
seen, so a fresh insert lands right after its anchor, ahead of older siblings. It doubles as the op's seq."""


def _as_id(raw: Any) -> RGAId:
    """Accept the list form that ids take in JSON and msgpack."""
    if (
        isinstance(raw, tuple | list)
        and len(raw) == 2
        and isinstance(raw[0], int)
        and not isinstance(raw[0], bool)
        and 1 <= raw[0] <= MAX_SEQ
        and isinstance(raw[1], str)
    ):
        return (raw[0], raw[1])
    raise ValueError(f"not an RGA id (counter in 1..{MAX_SEQ}, replica id): {str(raw)[:200]}")


class RGA(Replicated):
    """An ordered sequence of JSON-like values; deleted elements stay as invisible anchors (tombstones).

    insert() and delete() are ops of this replica (origin = replica_id); two live instances must never share a
    replica id, or their ids collide. RGA never discards an op, so its conflict log stays empty. Tombstones
    every writer has seen go with collect(); an element whose anchor went that way sits under the anchor's
    own place (``_placed``), while its signed anchor stays as it was written.
    """

    KIND = "rga"

    def __init__(self, replica_id: str | None = None) -> None:
        super().__init__(replica_id)
        self._nodes: dict[RGAId, tuple[RGAId | None, bytes]] = {}
        self._children: dict[RGAId | None, list[RGAId]] = {}
        self._deleted: dict[RGAId, RGAId] = {}
        self._placed: dict[RGAId, RGAId | None] = {}  # where an element sits, when not under its anchor

    def insert(self, after_id: RGAId | None, value: Any) -> RGAId:
        """Insert value right after after_id (None = at the head); returns the new element's id."""
        anchor = None if after_id is None else _as_id(after_id)
        if anchor is not None and anchor not in self._nodes:
            raise KeyError(f"unknown anchor {anchor!r}")
        data = pack_value(value)
        node_id = self._next_op_id()
        self._add_node(node_id, anchor, data)
        return node_id

    def delete(self, node_id: RGAId) -> None:
        """Hide an element; deleting it again is a no-op."""
        target = _as_id(node_id)
        if target not in self._nodes:
            raise KeyError(f"unknown element {target!r}")
        if target not in self._deleted:
            self._deleted[target] = self._next_op_id()

    def _next_op_id(self) -> RGAId:
        counter = self._ops.max_top() + 1
        if counter > MAX_SEQ:
            raise CounterError(f"this list has used every counter up to {MAX_SEQ}")
        self._ops.add(self.replica_id, self._ops.top(self.replica_id), counter)
        return (counter, self.replica_id)

    def seq_room(self) -> int:
        """Every origin's ops push the shared Lamport counter that new ids take."""
        return MAX_SEQ - self._ops.max_top()

    def _counter_limit(self) -> int:
        """Any origin's counter becomes ours (Lamport), so a delta may not jump past any of them by more."""
        return self._ops.max_top() + SEQ_SLACK

    def admit(self, delta: RGA) -> None:
        limit = self._counter_limit()
        if delta._ops.max_top() > limit:
            raise CounterError(f"list counters up to {delta._ops.max_top()}, limit {limit}")
        super().admit(delta)

    def _add_node(
        self, node_id: RGAId, anchor: RGAId | None, data: bytes, placed: Any = UNDER_ANCHOR
    ) -> None:
        self._nodes[node_id] = (anchor, data)
        if placed != UNDER_ANCHOR and placed != anchor:
            self._placed[node_id] = placed
            anchor = placed
        bisect.insort(self._children.setdefault(anchor, []), node_id)

    def _parent(self, node_id: RGAId) -> RGAId | None:
        return self._placed[node_id] if node_id in self._placed else self._nodes[node_id][0]

    def ids(self) -> list[RGAId]:
        """Ids of the visible elements, in list order: the anchors to pass to insert() and delete()."""
        visible: list[RGAId] = []
        stack = list(self._children.get(None, ()))
        while stack:
            node_id = stack.pop()
            if node_id not in self._deleted:
                visible.append(node_id)
            stack.extend(self._children.get(node_id, ()))
        return visible

    def collect(self, stable: VectorClock) -> int:
        """Forget deleted elements whose insert, delete and children are all within `stable`; returns how
        many went.

        `stable` must be a version every writer has reached, taken when every op any writer made before
        reaching it was already held here (f0mesh.state.stability): then no op still to come anchors on a
        collected element, and every op still to come has a greater id than everything stable, so it lands
        the same whether the stable part of the tree is kept or reshaped. A collected element's children move
        up to its anchor where that keeps the list's order: when none of its former siblings sorts between it
        and its children. Descending id order collapses a chain of tombstones in one call.
        """

        def within(node_id: RGAId) -> bool:
            return node_id[0] <= stable.get(node_id[1])

        collected = 0
        for target in sorted(self._deleted, reverse=True):
            kids = self._children.get(target, [])
            if target not in self._nodes or not within(target) or not within(self._deleted[target]):
                continue
            if not all(within(k) for k in kids):
                continue
            parent = self._parent(target)
            siblings = self._children[parent]
            top = kids[-1] if kids else target
            if any(target < s <= top for s in siblings):
                continue  # a former sibling would land among the moved children
            siblings.remove(target)
            for kid in kids:
                if self._nodes[kid][0] == parent:
                    self._placed.pop(kid, None)
                else:
                    self._placed[kid] = parent
                bisect.insort(siblings, kid)
            self._children.pop(target, None)
            delete = self._deleted.pop(target)
            del self._nodes[target]
            self._placed.pop(target, None)
            self._sigs.pop((target[1], target[0]), None)
            self._sigs.pop((delete[1], delete[0]), None)
            collected += 1
        if not self._children.get(None, True):
            self._children.pop(None)
        return collected

    def to_list(self) -> list[Any]:
        """The visible values in order, as fresh copies."""
        return unpack_value(pack_array([self._nodes[node_id][1] for node_id in self.ids()]))

    def merge(self, other: RGA) -> None:
        """Join other into self, in place."""
        self._prepare_merge(other)
        for node_id, (anchor, data) in list(other._nodes.items()):
            if node_id not in self._nodes:
                held = anchor is None or anchor in self._nodes or anchor in other._nodes
                self._add_node(
                    node_id, anchor, data, UNDER_ANCHOR if held else other._placed.get(node_id, anchor)
                )
        for target, op_id in list(other._deleted.items()):
            current = self._deleted.get(target)
            if current is None or op_id > current:
                self._deleted[target] = op_id
        self._ops.union(other._ops)
        self._merge_sigs(other)

    def delta_since(self, version: VectorClock) -> RGA:
        """The inserts and deletes a replica at `version` lacks."""
        delta = self._new_delta(version)
        for node_id, (anchor, data) in self._nodes.items():
            if node_id[0] > version.get(node_id[1]):
                delta._add_node(node_id, anchor, data, self._placed.get(node_id, UNDER_ANCHOR))
        delta._deleted = {t: op for t, op in self._deleted.items() if op[0] > version.get(op[1])}
        return self._finish_delta(delta)

    def _records_to_wire(self) -> list[Any]:
        nodes = [
            [*node_id, *self._nodes[node_id], *([self._placed[node_id]] if node_id in self._placed else [])]
            for node_id in sorted(self._nodes)
        ]
        deletes = [[*target, *self._deleted[target]] for target in sorted(self._deleted)]
        return [nodes, deletes]

    def _load_records(self, wire: list[Any]) -> None:
        nodes, deletes = wire
        for counter, replica, raw_anchor, data, *moved in nodes:
            node_id = _as_id((counter, replica))
            anchor = None if raw_anchor is None else _as_id(raw_anchor)
            if node_id in self._nodes:
                raise ValueError(f"element {node_id!r} listed twice")
            if anchor is not None and anchor[0] >= node_id[0]:
                raise ValueError(f"element {node_id!r} is not newer than its anchor {anchor!r}")
            if len(moved) > 1 or moved == [raw_anchor]:
                raise ValueError(f"element {node_id!r} has a bad place")
            placed = (None if moved[0] is None else _as_id(moved[0])) if moved else UNDER_ANCHOR
            if placed not in (UNDER_ANCHOR, None) and (anchor is None or placed >= anchor):  # type: ignore[operator]
                raise ValueError(f"element {node_id!r} is placed below its anchor")
            self._add_node(node_id, anchor, check_value_bytes(data), placed)
        for target_counter, target_replica, counter, replica in deletes:
            target = _as_id((target_counter, target_replica))
            if target in self._deleted:
                raise ValueError(f"delete of {target!r} listed twice")
            self._deleted[target] = _as_id((counter, replica))

    def _held_ops(self) -> Iterable[tuple[str, int]]:
        for counter, replica in (*self._nodes, *self._deleted.values()):
            yield replica, counter

    def _op_contents(self) -> Iterator[tuple[str, int, list[Any]]]:
        for (counter, replica), (anchor, data) in self._nodes.items():
            yield replica, counter, ["insert", anchor, data]
        for target, (counter, replica) in self._deleted.items():
            yield replica, counter, ["delete", target]

    def _drop_records(self, ops: set[OpId]) -> None:
        """Dropped elements take their deletes along; elements anchored on them wait, invisible."""
        nodes = {n: v for n, v in self._nodes.items() if (n[1], n[0]) not in ops}
        self._deleted = {t: op for t, op in self._deleted.items() if (op[1], op[0]) not in ops and t in nodes}
        placed, self._placed = self._placed, {}
        self._nodes, self._children = {}, {}
        for node_id, (anchor, data) in nodes.items():
            self._add_node(node_id, anchor, data, placed.get(node_id, UNDER_ANCHOR))

    def _state(self) -> object:
        return self._nodes, self._deleted, self._placed

    def _copy_records(self, other: RGA) -> None:
        other._nodes = dict(self._nodes)
        other._children = {anchor: list(ids) for anchor, ids in self._children.items()}
        other._deleted = dict(self._deleted)
        other._placed = dict(self._placed)
