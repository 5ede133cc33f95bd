"""The signed peer record: a versioned map with tags and a key, that old nodes still read as a list."""

from __future__ import annotations

import msgpack
import pytest

from f0mesh.config import NodeConfig
from f0mesh.errors import ConfigError
from f0mesh.identity import Identity
from f0mesh.peer_record import MAX_RECORD_BYTES, PeerRecord, parse_tag
from f0mesh.state.peers import make_entry, parse_entry

KEY = bytes(range(32))


def _old_from_wire(data: object) -> None:
    """What a node from before the map (and before private mode) checks first."""
    if not isinstance(data, list) or len(data) != 5:
        raise ValueError("peer record is not a 5-element list")


def _resign(identity: Identity, wire: dict) -> dict:
    """A record its own peer signed with fields this code does not know."""
    body = {k: v for k, v in wire.items() if k != "sig"}
    probe = PeerRecord._from_map({**body, "sig": b""})
    return {**body, "sig": identity.sign(probe.map_signed_bytes())}


def test_tags_and_key_round_trip_and_the_list_form_still_verifies_for_old_nodes() -> None:
    me = Identity.generate()
    record = PeerRecord.create(me, "http://127.0.0.1:1", tags={"role": "db", "region": "eu-west"}, x25519=KEY)
    wire = msgpack.unpackb(msgpack.packb(record.to_wire(), use_bin_type=True), raw=False)
    decoded = PeerRecord.from_wire(wire)
    assert decoded.tags == {"role": "db", "region": "eu-west"} and decoded.x25519 == KEY
    assert decoded.version == 2
    legacy = decoded.to_wire(legacy=True)  # a relay hands an old neighbour the list form
    _old_from_wire(legacy)
    old = PeerRecord.from_wire(legacy)
    assert (old.peer_id, old.url, old.seen, old.tags) == (me.peer_id, record.url, record.seen, {})
    assert PeerRecord.from_wire(old.to_wire()).version == 1  # a list record stays a list


def test_unknown_fields_are_kept_signed_and_relayed() -> None:
    me = Identity.generate()
    wire = PeerRecord.create(me, "http://127.0.0.1:1", x25519=KEY).to_wire()
    newer = _resign(me, {**wire, "v": 3, "webrtc": {"b": 1, "a": [1, 2]}})
    decoded = PeerRecord.from_wire(newer)
    assert decoded.version == 3 and decoded.extra == {"webrtc": {"b": 1, "a": [1, 2]}}
    relayed = decoded.to_wire()
    assert relayed["webrtc"] == {"b": 1, "a": [1, 2]} and relayed["v"] == 3
    reordered = {k: relayed[k] for k in sorted(relayed)} | {"webrtc": {"a": [1, 2], "b": 1}}
    assert PeerRecord.from_wire(reordered).extra == decoded.extra  # a relay may reorder keys
    with pytest.raises(ValueError, match="signature"):
        PeerRecord.from_wire({**relayed, "webrtc": {"a": [1, 2], "b": 2}})


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"tags": {"role": "root"}}, "signature"),
        ({"url": "http://127.0.0.1:2"}, "signature"),
        ({"x25519": bytes(32)}, "signature"),
        ({"sig1": b"x" * 64}, "signature"),
        ({"padding": "x" * MAX_RECORD_BYTES}, "larger than"),
        ({f"f{i}": i for i in range(30)}, "entries"),
        ({"tags": {"Bad Key": "x"}}, "tag key"),
        ({"tags": {f"k{i}": "v" for i in range(17)}}, "tags"),
        ({"tags": {"k": "v" * 129}}, "value"),
        ({"v": 1}, "version"),
        ({"x25519": b"short"}, "x25519"),
        ({"topics": ["news"]}, "signature"),
        ({"topics": "news"}, "topics"),
        ({"topics": ["a", "a"]}, "topics"),
        ({"topics": [f"t{i}" for i in range(33)]}, "topics"),
    ],
)
def test_forged_or_oversized_records_are_refused(change: dict, reason: str) -> None:
    wire = PeerRecord.create(
        Identity.generate(), "http://127.0.0.1:1", tags={"role": "db"}, x25519=KEY
    ).to_wire()
    with pytest.raises(ValueError, match=reason):
        PeerRecord.from_wire({**wire, **change})


def test_registry_entries_carry_both_forms_and_the_fresher_wins() -> None:
    me = Identity.generate()
    record = PeerRecord.create(me, "http://127.0.0.1:1", tags={"role": "db"}, x25519=KEY)
    entry = make_entry(record, "alive", 1.0)
    _old_from_wire(entry["record"])  # what an old node's registry reads
    info = parse_entry(me.peer_id, entry, now=record.seen + 1)
    assert info is not None and info.tags == {"role": "db"} and info.x25519 == KEY
    without_map = parse_entry(me.peer_id, {**entry, "record2": None}, now=record.seen + 1)
    assert without_map is not None and without_map.url == record.url and without_map.tags == {}


def test_topics_are_signed_bounded_and_reach_the_registry_view() -> None:
    me = Identity.generate()
    record = PeerRecord.create(me, "http://127.0.0.1:1", topics=["news", "prices/live"])
    decoded = PeerRecord.from_wire(msgpack.unpackb(msgpack.packb(record.to_wire()), raw=False))
    assert decoded.topics == ("news", "prices/live")
    info = parse_entry(me.peer_id, make_entry(record, "alive", 1.0), now=record.seen + 1)
    assert info is not None and info.topics == ("news", "prices/live")
    assert "topics" not in PeerRecord.create(me, "http://127.0.0.1:1").to_wire()  # every topic: unsaid
    # a node with many long topics names those that fit in the size cap, never an oversized record
    many = [f"{i:02d}" + "t" * 126 for i in range(40)]
    full = PeerRecord.create(me, "http://127.0.0.1:1", tags={"role": "db"}, topics=many)
    assert 0 < len(full.topics) < 16 and full.topics == tuple(many[: len(full.topics)])
    assert PeerRecord.from_wire(full.to_wire()).topics == full.topics


def test_tag_option_is_bounded(tmp_path) -> None:
    assert parse_tag("role=db") == ("role", "db")
    for bad in ("role", "=x", "Role=x", "k" * 33 + "=x", "k=" + "v" * 129):
        with pytest.raises(ValueError):
            parse_tag(bad)
    with pytest.raises(ConfigError, match="--tag"):
        NodeConfig(data_dir=tmp_path, tags={f"k{i}": "v" for i in range(17)})
