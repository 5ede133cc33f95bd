"""Op signatures ride with the records they sign: through deltas, merges, bytes, eviction."""

from __future__ import annotations

import pytest

from f0mesh.crdt import HLC, RGA, LWWElementSet, LWWMap, VectorClock
from f0mesh.crdt.codec import pack, unpack
from f0mesh.identity import Identity, is_valid_signature


def _verified(crdt, context: str) -> set[tuple[str, int]]:
    return {
        (o, s) for o, s, data, sig in crdt.signed_ops(context) if sig and is_valid_signature(o, data, sig)
    }


@pytest.mark.parametrize("kind", ["map", "set", "list"])
def test_signatures_survive_deltas_merges_and_bytes(kind: str) -> None:
    a, b = Identity.generate(), Identity.generate()
    ctx = f"{kind}/doc"

    def write(who: Identity, crdt, n: int) -> None:
        clock = HLC(who.peer_id)
        for i in range(n):
            if isinstance(crdt, LWWMap):
                crdt.set(f"k{i % 3}", i, clock.now())
            elif isinstance(crdt, LWWElementSet):
                crdt.add(f"e{i}", clock.now())
            else:
                crdt.insert(None, i)
        crdt.sign_ops(who.peer_id, ctx, who.sign)

    cls = {"map": LWWMap, "set": LWWElementSet, "list": RGA}[kind]
    mine, theirs = cls(a.peer_id), cls(b.peer_id)
    write(a, mine, 5)
    write(b, theirs, 4)
    delta = cls.from_bytes(theirs.delta_since(VectorClock()).to_bytes())
    assert _verified(delta, ctx) == set(delta.op_ids()) and not delta.unsigned()
    mine.merge(delta)
    again = cls.from_bytes(mine.to_bytes(), a.peer_id)
    assert again == mine and _verified(again, ctx) == set(again.op_ids())
    assert not _verified(again, "map/another-doc")  # an op cannot be replayed into another document
    if kind == "map":  # superseded records took their signatures with them: 3 keys, 9 writes
        sigs = unpack(mine.to_bytes())[5]
        assert sum(len(flat) // 2 for flat in sigs.values()) == len(list(mine.op_ids())) == 3


def test_malformed_signatures_are_refused() -> None:
    me = Identity.generate()
    doc = LWWMap(me.peer_id)
    doc.set("k", 1, HLC(me.peer_id).now())
    fields = unpack(doc.to_bytes())[:5]
    for bad in (
        {me.peer_id: [1, b"short"]},
        {me.peer_id: [2, b"x" * 64]},
        {me.peer_id: [1]},
        [[me.peer_id, 1]],
    ):
        with pytest.raises(ValueError):
            LWWMap.from_bytes(pack([*fields, bad]))
    assert LWWMap.from_bytes(pack(fields)).unsigned() == {(me.peer_id, 1)}  # an older release's bytes
