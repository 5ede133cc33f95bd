"""clone(): an independent replica of the same state, so a write into it can be dropped (issue 18)."""

from __future__ import annotations

from f0mesh.crdt import HLC, RGA, LWWElementSet, LWWMap


def test_a_clone_equals_its_source_and_writes_to_either_stay_apart() -> None:
    hlc = HLC("me")
    source_map, source_set, source_list = LWWMap("me"), LWWElementSet("me"), RGA("me")
    source_map.set("a", 1, hlc.now())
    source_set.add("x", hlc.now())
    first = source_list.insert(None, "one")
    for source in (source_map, source_set, source_list):
        before = source.to_bytes()
        clone = source.clone()
        assert clone == source and clone.replica_id == source.replica_id
        if isinstance(clone, LWWMap):
            clone.set("b", 2, hlc.now())
        elif isinstance(clone, LWWElementSet):
            clone.remove("x", hlc.now())
        else:
            clone.insert(first, "two")
            clone.delete(first)
        assert source.to_bytes() == before  # untouched
        assert clone.version() != source.version()
        source.merge(clone.delta_since(source.version()))
        assert source == clone  # the clone's write merges back like any delta
    assert source_map.to_dict() == {"a": 1, "b": 2} and source_set.elements() == set()
    assert source_list.to_list() == ["two"]
