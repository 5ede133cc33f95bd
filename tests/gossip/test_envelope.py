import base64
import hashlib
import os
import time

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from f0mesh.crdt import HLCTimestamp
from f0mesh.gossip.envelope import ID_CHARS, MAX_TOPIC_BYTES, Envelope, is_message_id, message_id
from f0mesh.gossip.errors import GossipReject, Reason
from f0mesh.identity import Identity

ALICE = Identity.generate()
MALLORY = Identity.generate()


def stamp(identity: Identity = ALICE, wall_ms: int | None = None) -> HLCTimestamp:
    return HLCTimestamp(int(time.time() * 1000) if wall_ms is None else wall_ms, 0, identity.peer_id)


def make(payload=None, identity: Identity = ALICE, **kw) -> Envelope:
    args = {"seq": 1, "hlc_ts": stamp(identity), "topic": "chat", "ttl": 8, **kw}
    return Envelope.create(
        identity, payload=payload if payload is not None else {"b": 1, "a": [1, "x"]}, **args
    )


def reason_of(raw, **kw) -> Reason:
    with pytest.raises(GossipReject) as info:
        envelope = Envelope.decode(raw, **kw)
        envelope.verify()
    return info.value.reason


def test_round_trip_keeps_every_field_and_the_id():
    sent = make()
    got = Envelope.decode(sent.encode())
    got.verify()
    assert got == sent
    assert (got.origin, got.seq, got.topic, got.ttl, got.hops) == (ALICE.peer_id, 1, "chat", 8, 0)
    assert got.payload == {"a": [1, "x"], "b": 1}
    assert got.id == message_id(got.signed) and is_message_id(got.id) and len(got.id) == ID_CHARS


def test_same_content_signs_to_the_same_bytes_whatever_the_key_order():
    ts = stamp()
    one = Envelope.create(ALICE, 1, ts, "t", {"x": 1, "y": 2}, 8)
    two = Envelope.create(ALICE, 1, ts, "t", {"y": 2, "x": 1}, 8)
    assert one.signed == two.signed and one.id == two.id


def test_flipped_bit_in_the_signed_part_is_a_bad_signature():
    envelope = make(payload={"text": "hello"})
    signed = bytearray(envelope.signed)
    index = signed.rindex(b"hello")
    signed[index] ^= 0x01  # "hello" -> "iello": still canonical, so only the signature can catch it
    raw = msgpack.packb([bytes(signed), envelope.signature, 0], use_bin_type=True)
    assert reason_of(raw) is Reason.BAD_SIGNATURE


def test_signature_by_another_key_than_the_origin_is_rejected():
    honest = make()
    forged = Envelope.create(MALLORY, 1, stamp(MALLORY), "chat", {"a": 1}, 8)
    raw = msgpack.packb([honest.signed, forged.signature, 0], use_bin_type=True)
    assert reason_of(raw) is Reason.BAD_SIGNATURE


def test_forwarding_changes_hops_but_not_the_signature_or_id():
    envelope = make()
    once = Envelope.decode(envelope.forwarded())
    twice = Envelope.decode(once.forwarded())
    twice.verify()
    assert (once.hops, twice.hops) == (1, 2)
    assert twice.id == envelope.id and twice.signed == envelope.signed


def test_hops_beyond_ttl_are_malformed():
    envelope = make(ttl=1)
    hop = Envelope.decode(envelope.forwarded())
    assert reason_of(hop.forwarded()) is Reason.MALFORMED


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"\xc1",
        b"not msgpack at all",
        msgpack.packb([b"x", b"y"]),
        msgpack.packb({"signed": b"x"}),
        msgpack.packb([b"x", b"s" * 64, 0], use_bin_type=True),
        msgpack.packb([msgpack.packb([1]), b"s" * 64, 0], use_bin_type=True),
        msgpack.packb(["text", b"s" * 64, 0], use_bin_type=True),
        msgpack.packb([msgpack.packb([1] * 8), b"s" * 63, 0], use_bin_type=True),
    ],
)
def test_garbage_is_malformed(raw):
    assert reason_of(raw) is Reason.MALFORMED


def resign(fields, identity=ALICE, hops=0) -> bytes:
    signed = msgpack.packb(fields, use_bin_type=True)
    return msgpack.packb([signed, identity.sign(signed), hops], use_bin_type=True)


def good_fields():
    return [1, ALICE.peer_id, 1, int(time.time() * 1000), 0, "chat", 8, {"a": 1}]


@pytest.mark.parametrize(
    ("index", "value"),
    [
        (0, 2),  # unknown version
        (1, "not-a-peer-id"),
        (2, 0),  # seq starts at 1
        (2, -1),
        (3, "now"),
        (4, 2**40),  # logical counter far beyond any honest clock
        (5, ""),
        (5, "x" * (MAX_TOPIC_BYTES + 1)),
        (5, "bad\ntopic"),
        (6, 256),
        (7, {"b": 1, "a": 2}),  # keys out of order: not the canonical encoding
        (7, {"a": b"bytes inside a JSON value"}),  # bytes only as the whole payload
        (7, {1: "non-string key"}),
    ],
)
def test_signed_but_invalid_fields_are_malformed(index, value):
    fields = good_fields()
    fields[index] = value
    assert reason_of(resign(fields)) is Reason.MALFORMED


def test_well_formed_resign_is_accepted():
    Envelope.decode(resign(good_fields())).verify()


def test_a_bytes_payload_travels_as_bytes():
    fields = good_fields()
    fields[7] = b"\x00\xffraw"
    envelope = Envelope.decode(resign(fields))
    envelope.verify()
    assert envelope.payload == b"\x00\xffraw"


def test_trailing_bytes_and_extension_types_are_malformed():
    raw = make().encode()
    assert reason_of(raw + b"\x00") is Reason.MALFORMED
    fields = good_fields()
    fields[7] = msgpack.ExtType(5, b"x")
    assert reason_of(resign(fields)) is Reason.MALFORMED


def test_oversized_is_too_large_before_any_parsing():
    raw = make(payload={"blob": "x" * 70_000}).encode()
    assert reason_of(raw, max_bytes=64 * 1024) is Reason.TOO_LARGE
    assert reason_of(b"\xc1" * 70_000, max_bytes=64 * 1024) is Reason.TOO_LARGE
    assert Envelope.decode(raw, max_bytes=len(raw)).payload["blob"] == "x" * 70_000


@pytest.mark.parametrize("payload", [float("nan"), {"raw": b"nested"}, {1: 2}, {"s": {1, 2}}, [object()]])
def test_create_refuses_what_json_cannot_carry(payload):
    with pytest.raises(GossipReject) as info:
        make(payload=payload)
    assert info.value.reason is Reason.MALFORMED and info.value.status == 400


def test_create_refuses_bad_topic_seq_and_ttl():
    for kw in ({"topic": ""}, {"topic": "t" * 300}, {"seq": 0}, {"ttl": 300}):
        with pytest.raises(GossipReject):
            make(**kw)


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(), children, max_size=4),
    max_leaves=20,
)


@settings(max_examples=60, deadline=None)
@given(payload=json_values, topic=st.text(min_size=1, max_size=30).filter(str.isprintable))
def test_any_json_payload_round_trips_and_verifies(payload, topic):
    envelope = Envelope.create(ALICE, 7, stamp(), topic, payload, 4)
    got = Envelope.decode(envelope.forwarded())
    got.verify()
    assert got.id == envelope.id and got.topic == topic and got.hops == 1
    assert msgpack.packb(got.payload) == msgpack.packb(envelope.payload)


def test_message_id_is_rfc4648_base32_of_the_sha256_prefix() -> None:
    """The table-driven encoding must give exactly the ids every stored message already has."""
    for signed in [b"", b"\x00" * 20, b"\xff" * 150, *(os.urandom(n) for n in range(1, 200, 7))]:
        expected = base64.b32encode(hashlib.sha256(signed).digest()[:20]).decode("ascii").lower()
        assert message_id(signed) == expected


@pytest.mark.parametrize(
    "value",
    ["a" * 15 + "!" + "a" * 16, "a" * 31 + "1", "A" * 32, "a" * 31 + "é", "a" * 31 + "\n", "a" * 33, 7, None],
)
def test_a_message_id_is_exactly_32_lower_case_base32_characters(value) -> None:
    assert not is_message_id(value)
    assert is_message_id("abcdefghijklmnopqrstuvwxyz234567")
