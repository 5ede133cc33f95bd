"""Signed signaling: every forged, replayed, stale, mis-targeted or malformed offer is refused
with the right status, and a refused offer leaves nothing behind (no link, no registry row)."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import time

import pytest
from aiortc import RTCPeerConnection

from f0mesh.errors import PolicyError, SignatureError
from f0mesh.identity import Identity
from f0mesh.rtc.ice import rtc_configuration
from f0mesh.rtc.sdp import SdpError, validate_sdp
from f0mesh.rtc.signaling import NonceCache, SignedDescription, sign_description, verify_description


def make_offer_sdp() -> str:
    async def build() -> str:
        pc = RTCPeerConnection(rtc_configuration([]))
        pc.createDataChannel("ctl", negotiated=True, id=0)
        await pc.setLocalDescription(await pc.createOffer())
        sdp = pc.localDescription.sdp
        await pc.close()
        return sdp

    return asyncio.run(build())


@pytest.fixture(scope="module")
def offer_sdp() -> str:
    return make_offer_sdp()


def test_sdp_validation_refuses_what_aiortc_would_accept(offer_sdp: str) -> None:
    summary = validate_sdp(offer_sdp)
    assert summary.fingerprints and summary.candidates
    for bad, words in [
        ("", "empty"),
        ("garbage text", "v=0"),
        ("v=0", "no m= line"),
        (offer_sdp.replace("a=fingerprint:", "a=x-fp:"), "fingerprint"),
        (offer_sdp.replace("a=ice-pwd:", "a=x-pwd:"), "ICE credentials"),
        (offer_sdp.replace("m=application", "m=audio"), "data-channel"),
        (
            "\n".join(line for line in offer_sdp.splitlines() if not line.startswith("a=candidate")),
            "candidate",
        ),
        (offer_sdp.replace("a=candidate:", "a=candidate:bogus ", 1), "malformed ICE candidate"),
        ("v=0\r\n" + "a=x\r\n" * 20000, "larger"),
    ]:
        with pytest.raises(SdpError) as info:
            validate_sdp(bad)
        assert words in info.value.detail, (words, info.value.detail)
        assert info.value.status == 400


def test_candidates_outside_dial_allow_are_forbidden(offer_sdp: str) -> None:
    with pytest.raises(SdpError) as info:
        validate_sdp(offer_sdp, allow_ip=lambda ip: False)
    assert info.value.status == 403


def test_signature_binds_every_field(offer_sdp: str) -> None:
    alice, bob = Identity.generate(), Identity.generate()
    offer = sign_description(alice, "offer", offer_sdp, bob.peer_id, "http://127.0.0.1:1")
    verify_description(offer, me=bob.peer_id, nonces=NonceCache())
    swapped_sdp = offer_sdp.replace("a=fingerprint:sha-256 ", "a=fingerprint:sha-256 00:", 1)
    for field, value in [
        ("sdp", swapped_sdp),
        ("from_url", "http://evil"),
        ("ts", offer.ts + 1),
        ("nonce", "n2"),
    ]:
        tampered = dataclasses.replace(offer, **{field: value})
        with pytest.raises(SignatureError):
            verify_description(tampered, me=bob.peer_id, nonces=NonceCache())
    mallory = Identity.generate()
    with pytest.raises(PolicyError) as info:
        verify_description(offer, me=mallory.peer_id, nonces=NonceCache())
    assert info.value.code == "wrong_target"


def test_stale_and_replayed_descriptions(offer_sdp: str) -> None:
    alice, bob = Identity.generate(), Identity.generate()
    offer = sign_description(alice, "offer", offer_sdp, bob.peer_id, None)
    nonces = NonceCache()
    with pytest.raises(PolicyError) as info:
        verify_description(offer, me=bob.peer_id, nonces=nonces, now=time.time() + 61)
    assert info.value.code == "stale"
    verify_description(offer, me=bob.peer_id, nonces=nonces)
    nonces.add(offer.nonce, time.time())
    with pytest.raises(PolicyError) as info:
        verify_description(offer, me=bob.peer_id, nonces=nonces)
    assert info.value.code == "replay"


def test_json_shape_is_checked(offer_sdp: str) -> None:
    alice, bob = Identity.generate(), Identity.generate()
    data = sign_description(alice, "offer", offer_sdp, bob.peer_id, None).to_json()
    assert SignedDescription.from_json(data, "offer").sdp == offer_sdp
    with pytest.raises(Exception) as info:
        SignedDescription.from_json({**data, "ts": "yesterday"}, "offer")
    assert "ts" in str(info.value)
    with pytest.raises(Exception) as info:
        SignedDescription.from_json(data, "answer")
    assert "expected a signed answer" in str(info.value)


def _post_offer(node, desc: SignedDescription | dict):
    body = desc.to_json() if isinstance(desc, SignedDescription) else desc
    return node.http.post("/offer", json=body)


def test_bad_offers_over_http_leave_nothing_behind(node_factory, offer_sdp: str) -> None:
    b = node_factory("b")
    alice = Identity.generate()
    good = sign_description(alice, "offer", offer_sdp, b.peer_id, "http://127.0.0.1:9")
    forged_sig = base64.urlsafe_b64encode(Identity.generate().sign(good.signed_bytes())).decode()
    stale = dataclasses.replace(good, ts=good.ts - 120)
    stale = dataclasses.replace(
        stale, sig=base64.urlsafe_b64encode(alice.sign(stale.signed_bytes())).decode()
    )
    cases = [
        (dataclasses.replace(good, sig=forged_sig), 403, "bad_signature"),
        (
            dataclasses.replace(good, sdp=good.sdp.replace("a=ice-ufrag:", "a=ice-ufrag:x")),
            403,
            "bad_signature",
        ),
        (sign_description(alice, "offer", offer_sdp, Identity.generate().peer_id, None), 403, "wrong_target"),
        (stale, 403, "stale"),
        (sign_description(alice, "offer", "garbage", b.peer_id, None), 400, "bad_sdp"),
        (sign_description(alice, "offer", "v=0", b.peer_id, None), 400, "bad_sdp"),
        ({"type": "offer", "sdp": 5}, 400, "bad_signaling"),
        (
            {
                "type": "offer",
                "sdp": offer_sdp,
                "from": "not-a-peer-id",
                "to": b.peer_id,
                "ts": time.time(),
                "nonce": "abc",
                "sig": "AAAA",
            },
            403,
            "bad_signature",
        ),
    ]
    for desc, status, code in cases:
        r = _post_offer(b, desc)
        assert r.status_code == status, (code, r.text)
        assert r.json()["error"] == code, r.text
        assert r.json()["detail"]
    assert b.http.post(
        "/offer", content=b"{not json", headers={"content-type": "application/json"}
    ).status_code in (
        400,
        422,
    )
    assert b.links() == []
    assert b.http.get("/api/peers").json()["peers"] == []
    # The genuine offer is answered, and its replay refused.
    answer = _post_offer(b, good)
    assert answer.status_code == 200, answer.text
    assert answer.json()["type"] == "answer" and answer.json()["offer_nonce"] == good.nonce
    replay = _post_offer(b, good)
    assert replay.status_code == 403 and replay.json()["error"] == "replay"
    assert len(b.links()) == 1


def test_answer_endpoint_refuses_unknown_and_garbage(node_factory, offer_sdp: str) -> None:
    b = node_factory("b")
    alice = Identity.generate()
    answer = sign_description(alice, "answer", offer_sdp, b.peer_id, None, offer_nonce="nope")
    r = b.http.post("/answer", json=answer.to_json())
    assert r.status_code == 404 and r.json()["error"] == "not_found"
    r = b.http.post("/answer", json={"type": "answer"})
    assert r.status_code == 400
