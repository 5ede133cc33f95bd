"""The relay's forwarding decisions and the private peer record (issue 23), without processes."""

from __future__ import annotations

import time

import msgpack
import pytest

from f0mesh.identity import Identity
from f0mesh.peer_record import PeerRecord
from f0mesh.rtc.ice import path_kind
from f0mesh.rtc.relay import MAX_RELAYS, RelayLimits, RelayRefused, SignalRelay, envelope, parse, refusal
from f0mesh.rtc.relay_routes import MAX_LINKS_PER_SUMMARY, MAX_SCANNED, MAX_SUMMARIES, RouteMap
from f0mesh.rtc.signaling import sign_description
from f0mesh.state.peers import make_entry, parse_entry

SDP = "v=0\r\n"


def _ids(tmp_path, *names: str) -> list[Identity]:
    return [Identity.load_or_create(tmp_path / name) for name in names]


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _offer(src: Identity, dst: Identity) -> dict:
    return envelope(
        dst.peer_id, src.peer_id, sign_description(src, "offer", SDP, dst.peer_id, None).to_json()
    )


def test_relay_forwards_a_signed_offer_and_only_its_answer(tmp_path) -> None:
    q, p = _ids(tmp_path, "q", "p")
    relay = SignalRelay()
    offer = _offer(q, p)
    relay.offer(q.peer_id, p.peer_id, offer, next_hop=p.peer_id)
    assert relay.in_flight() == 1
    answer = sign_description(p, "answer", SDP, q.peer_id, None, offer_nonce=offer["desc"]["nonce"])
    reply = envelope(q.peer_id, p.peer_id, answer.to_json())
    with pytest.raises(RelayRefused) as wrong_way:
        relay.reply(q.peer_id, p.peer_id, envelope(p.peer_id, q.peer_id, answer.to_json()))
    assert wrong_way.value.code == "forged_source"
    relay.reply(p.peer_id, q.peer_id, reply)
    assert relay.in_flight() == 0
    with pytest.raises(RelayRefused) as again:
        relay.reply(p.peer_id, q.peer_id, reply)
    assert again.value.code == "unsolicited"


def test_relay_refuses_forged_replayed_unrouted_and_unsolicited(tmp_path, monkeypatch) -> None:
    q, p, m = _ids(tmp_path, "q", "p", "m")
    relay = SignalRelay()
    forged = _offer(q, p)
    forged["desc"]["sdp"] = SDP + "a=swapped\r\n"
    with pytest.raises(RelayRefused) as bad_sig:
        relay.offer(q.peer_id, p.peer_id, forged, next_hop=p.peer_id)
    assert bad_sig.value.code == "bad_signature"
    impersonated = _offer(m, p)  # M's valid offer, sent by Q's link
    with pytest.raises(RelayRefused) as source:
        relay.offer(q.peer_id, p.peer_id, impersonated, next_hop=p.peer_id)
    assert source.value.code == "forged_source"
    good = _offer(q, p)
    relay.offer(q.peer_id, p.peer_id, good, next_hop=p.peer_id)
    with pytest.raises(RelayRefused) as replay:
        relay.offer(q.peer_id, p.peer_id, good, next_hop=p.peer_id)
    assert replay.value.code == "replay"
    with pytest.raises(RelayRefused) as unrouted:
        relay.offer(q.peer_id, m.peer_id, _offer(q, m), next_hop=None)
    assert unrouted.value.code == "no_route"
    with monkeypatch.context() as patch:
        patch.setattr(time, "time", lambda: 1_000_000.0)
        stale = _offer(q, p)
    with pytest.raises(RelayRefused) as old:
        relay.offer(q.peer_id, p.peer_id, stale, next_hop=p.peer_id)
    assert old.value.code == "stale"
    with pytest.raises(RelayRefused) as unsolicited:
        relay.reply(p.peer_id, q.peer_id, refusal(q.peer_id, p.peer_id, "nonce-never-sent", "x", "y"))
    assert unsolicited.value.code == "unsolicited"


def test_relay_state_stays_bounded_under_throwaway_identities(tmp_path) -> None:
    clock = FakeClock()
    limits = RelayLimits(max_peers=64, max_in_flight=32, total_burst=1000, total_rate=1000)
    relay = SignalRelay(limits, clock=clock)
    target = Identity.load_or_create(tmp_path / "target")
    refused = 0
    for _ in range(1000):
        sender = Identity.generate()
        try:
            relay.offer(sender.peer_id, target.peer_id, _offer(sender, target), next_hop=target.peer_id)
        except RelayRefused:
            refused += 1
        assert relay.tracked_peers() <= 64 and relay.in_flight() <= 32
    assert refused >= 1000 - 32
    clock.now += limits.in_flight_ttl_s + 1
    late = Identity.generate()
    relay.offer(late.peer_id, target.peer_id, _offer(late, target), next_hop=target.peer_id)
    assert relay.in_flight() == 1  # expired forwards are forgotten


def test_one_peer_is_rate_limited(tmp_path) -> None:
    q, p = _ids(tmp_path, "q", "p")
    relay = SignalRelay(RelayLimits(per_peer_burst=3, per_peer_rate=0.001), clock=FakeClock())
    for _ in range(3):
        relay.offer(q.peer_id, p.peer_id, _offer(q, p), next_hop=p.peer_id)
    with pytest.raises(RelayRefused) as limited:
        relay.offer(q.peer_id, p.peer_id, _offer(q, p), next_hop=p.peer_id)
    assert limited.value.code == "rate_limited"


def test_a_later_relay_takes_the_offer_from_the_last_hop_and_returns_the_reply_to_it(tmp_path) -> None:
    """a -> b -> c -> d: c sees the offer carried by b with via [b], and sends d's answer back to b."""
    a, b, d, m = _ids(tmp_path, "a", "b", "d", "m")
    relay = SignalRelay()
    offer = {**_offer(a, d), "via": [b.peer_id]}
    parse(offer)
    relay.offer(b.peer_id, d.peer_id, offer, next_hop=d.peer_id)
    answer = sign_description(d, "answer", SDP, a.peer_id, None, offer_nonce=offer["desc"]["nonce"])
    with pytest.raises(RelayRefused) as elsewhere:  # the answer must come back from where it went
        relay.reply(m.peer_id, a.peer_id, envelope(a.peer_id, d.peer_id, answer.to_json()))
    assert elsewhere.value.code == "unsolicited"
    assert relay.reply(d.peer_id, a.peer_id, envelope(a.peer_id, d.peer_id, answer.to_json())) == b.peer_id
    # a refusal from a hop further on travels back the same way
    again = {**_offer(a, d), "via": [b.peer_id]}
    relay.offer(b.peer_id, d.peer_id, again, next_hop=m.peer_id)
    no = refusal(a.peer_id, m.peer_id, again["desc"]["nonce"], "no_route", "no way")
    assert relay.reply(m.peer_id, a.peer_id, no) == b.peer_id and relay.in_flight() == 0


def test_forged_multi_hop_offers_are_refused(tmp_path) -> None:
    a, b, c, d, m = _ids(tmp_path, "a", "b", "c", "d", "m")
    relay = SignalRelay()
    claimed = {**_offer(a, d), "via": [c.peer_id]}  # carried by b, claiming c relayed it
    with pytest.raises(RelayRefused) as hop:
        relay.offer(b.peer_id, d.peer_id, claimed, next_hop=d.peer_id)
    assert hop.value.code == "forged_source"
    swapped = {**_offer(a, d), "via": [b.peer_id]}
    swapped["desc"]["sdp"] = SDP + "a=swapped\r\n"
    with pytest.raises(RelayRefused) as sig:
        relay.offer(b.peer_id, d.peer_id, swapped, next_hop=d.peer_id)
    assert sig.value.code == "bad_signature"
    relabelled = {**_offer(m, d), "from": a.peer_id, "via": [b.peer_id]}  # M's offer sold as A's
    with pytest.raises(RelayRefused) as source:
        relay.offer(b.peer_id, d.peer_id, relabelled, next_hop=d.peer_id)
    assert source.value.code == "forged_source"
    for via in (
        [b.peer_id, c.peer_id, m.peer_id, Identity.generate().peer_id],  # more relays than allowed
        [b.peer_id, b.peer_id],
        [a.peer_id],  # the sender as its own relay
        ["x" * 60],
    ):
        with pytest.raises(RelayRefused) as bad:
            parse({**_offer(a, d), "via": via})
        assert bad.value.code == "malformed", via
    assert relay.in_flight() == 0 and MAX_RELAYS == 3


def test_every_hop_charges_the_origin_as_well_as_the_carrier(tmp_path) -> None:
    a, b, c, d = _ids(tmp_path, "a", "b", "c", "d")
    relay = SignalRelay(RelayLimits(per_peer_burst=2, per_peer_rate=0.001), clock=FakeClock())
    relay.offer(b.peer_id, d.peer_id, {**_offer(a, d), "via": [b.peer_id]}, next_hop=d.peer_id)
    relay.offer(c.peer_id, d.peer_id, {**_offer(a, d), "via": [c.peer_id]}, next_hop=d.peer_id)
    with pytest.raises(RelayRefused) as limited:  # a fresh carrier, but A has spent its burst here
        relay.offer(d.peer_id, b.peer_id, {**_offer(a, b), "via": [d.peer_id]}, next_hop=b.peer_id)
    assert limited.value.code == "rate_limited"


def test_route_map_finds_neighbours_towards_a_peer_within_a_bound() -> None:
    """a - b - c - d - e from the link summaries; d's record names x as its relay."""
    summaries = {
        "b": {"links": [{"peer_id": "a"}, {"peer_id": "c"}]},
        "c": {"links": [{"peer_id": "d"}]},
        "e": {"links": [{"peer_id": "d"}, "junk", {"peer_id": 7}]},
        "junk": {"links": "not a list"},
    }
    routes = RouteMap(summaries)
    everyone = {"a", "b", "c", "e", "x"}
    assert routes.nearest("d", ["x"], 1, everyone) == {"x": 1, "c": 1, "e": 1}
    assert routes.nearest("d", [], 3, {"a", "b"}) == {"b": 2}  # the nearest depth only
    assert routes.nearest("d", [], 1, {"a", "b"}) == {}  # beyond the bound
    assert routes.nearest("unknown", [], 3, everyone) == {}


def test_route_search_is_bounded_in_a_liars_graph() -> None:
    """2,000 summaries of 200 links each: the graph keeps 1,024 of 64. A search looks at a bounded
    number of links, so a peer three links away behind 200 x 64 links at depth two is not found."""
    summaries = {
        f"o{i}": {"links": [{"peer_id": "target"}, *({"peer_id": f"o{i}-{j}"} for j in range(199))]}
        for i in range(2000)
    }
    summaries = {"x": {"links": [{"peer_id": "o5-1"}]}, **summaries}
    routes = RouteMap(summaries)
    assert sum(len(v) for v in routes._links().values()) <= 2 * MAX_SUMMARIES * MAX_LINKS_PER_SUMMARY
    assert "o1500" not in routes._links() and "o5-100" not in routes._links()
    assert routes.nearest("target", [], 3, {"o5", "x"}) == {"o5": 1}
    assert routes.nearest("o5-1", [], 3, {"x"}) == {"x": 1}
    assert 1023 * MAX_LINKS_PER_SUMMARY > MAX_SCANNED  # depth two from "target" is past the budget
    assert routes.nearest("target", [], 3, {"x"}) == {}


# -- peer records ---------------------------------------------------------------------------------


def _old_from_wire(data: list) -> None:
    """What a node from before private mode checks first (peer_record.py at c5738a4)."""
    if not isinstance(data, list) or len(data) != 5:
        raise ValueError("peer record is not a 5-element list")


def test_public_records_are_unchanged_and_private_ones_are_signed_and_dropped_by_old_nodes(tmp_path) -> None:
    me, relay = _ids(tmp_path, "me", "relay")
    public = PeerRecord.create(me, "http://127.0.0.1:1")
    assert len(public.to_wire(legacy=True)) == 5  # what a new node hands an old one
    assert public.signed_bytes() == msgpack.packb(
        ["f0mesh-peer-record-v1", me.peer_id, public.url, public.seen, None]
    )
    _old_from_wire(public.to_wire(legacy=True))

    private = PeerRecord.create(me, "http://127.0.0.1:1", private=True, relays=(relay.peer_id,))
    wire = private.to_wire(legacy=True)
    decoded = PeerRecord.from_wire(wire)
    assert decoded.private and decoded.relays == (relay.peer_id,)
    with pytest.raises(ValueError):
        _old_from_wire(wire)  # an old node drops it: it never dials a private node's URL
    with pytest.raises(ValueError, match="signature"):
        PeerRecord.from_wire(wire[:5])  # nobody can strip the marker to make it look public
    with pytest.raises(ValueError, match="signature"):
        PeerRecord.from_wire([*wire[:5], {"private": True, "relays": []}])
    with pytest.raises(ValueError):
        PeerRecord.from_wire([*wire[:5], {"private": True, "relays": ["x"] * 3}])
    info = parse_entry(me.peer_id, make_entry(private, "alive", time.time()), time.time())
    assert info is not None and info.private and info.relays == (relay.peer_id,)


@pytest.mark.parametrize(
    ("local", "remote", "path"),
    [
        ("10.0.0.1:1 host", "10.0.0.2:2 host", "host"),
        ("10.0.0.1:1 host", "1.2.3.4:5 srflx", "srflx"),
        ("10.0.0.1:1 prflx", "10.0.0.2:2 host", "prflx"),
        ("5.6.7.8:1 relay", "1.2.3.4:5 srflx", "relay"),
        (None, None, None),
    ],
)
def test_path_names_the_most_indirect_candidate(local, remote, path) -> None:
    assert path_kind(local, remote) == path
