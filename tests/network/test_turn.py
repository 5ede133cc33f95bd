"""TURN (issue 5 item 4): relay-only nodes link through a coturn started by the test on 127.0.0.1.

With ``--ice-relay-only`` a node gathers no host candidates, so the only way its two channels can open
is through TURN allocations; the link's nominated pair must show ``relay`` on both ends, and coturn's
own log must show the allocations and, once the nodes are gone, the packets it relayed for them. A
wrong password must fail the dial at once with an error in words, from either side of the dial.
"""

from __future__ import annotations

import json
import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from network.turnserver import MAKE_DEPS, TurnServer

from nodes import start_all, wait_for

USER, PASSWORD = "f0mesh-test", "relay-secret-42"


@pytest.fixture
def turn(tmp_path: Path) -> Iterator[TurnServer]:
    if shutil.which("turnserver") is None:
        pytest.fail(MAKE_DEPS)
    server = TurnServer(tmp_path / "coturn", user=USER, password=PASSWORD)
    try:
        yield server.start()
    finally:
        server.stop()


def relay_flags(servers: list[dict[str, str]] | Path) -> list[str]:
    """``--ice-servers`` takes the JSON itself or a file holding it; both forms are used below."""
    value = str(servers) if isinstance(servers, Path) else json.dumps(servers)
    return ["--ice-servers", value, "--ice-relay-only", "--qos-interval", "1", "--probe-rate", "5"]


def assert_error_in_words(response, what: str) -> dict[str, str]:
    assert response.status_code >= 400, f"{what}: {response.status_code} {response.text}"
    assert response.status_code != 500, f"{what}: a 500 is a bug: {response.text}"
    body = response.json()
    assert set(body) >= {"error", "detail"}, body
    assert isinstance(body["detail"], str) and len(body["detail"].split()) >= 4, body
    # A wrong password is known at once (TURN answers 401); it must not surface as a timeout.
    assert response.status_code != 504 and body["error"] != "peer_timeout", body
    return body


def test_relay_only_nodes_link_through_turn(node_factory, turn: TurnServer, tmp_path: Path) -> None:
    servers_file = tmp_path / "ice-servers.json"
    servers_file.write_text(json.dumps({"iceServers": turn.ice_servers()}))
    a = node_factory("a", extra=relay_flags(turn.ice_servers()), start=False)
    b = node_factory("b", extra=relay_flags(servers_file), start=False)
    start_all([a, b])

    started = time.monotonic()
    dialled = a.dial(b)
    dial_s = time.monotonic() - started
    assert dialled.status_code == 200, dialled.text
    body = dialled.json()
    assert body["state"] == "open" and body["peer_id"] == b.peer_id
    print(f"\nTURN link: setup_ms {body['setup_ms']:.0f} (POST /dial answered in {dial_s * 1000:.0f} ms)")

    for node, peer in ((a, b), (b, a)):
        view = node.link_to(peer.peer_id)
        assert view is not None and view["state"] == "open", view
        local, remote = view["ice"]["local"], view["ice"]["remote"]
        # "host:port type": both candidates are relayed addresses on coturn, never the TURN port itself.
        for candidate in (local, remote):
            assert re.fullmatch(r"127\.0\.0\.1:\d+ relay", candidate or ""), view["ice"]
            assert candidate != f"127.0.0.1:{turn.port} relay"
    assert turn.allocations() >= 2, turn.log_tail()
    assert turn.auth_failures() == 0, turn.log_tail()

    # Traffic really flows over the relayed pair: probes are answered, gossip arrives.
    measured = wait_for(
        lambda: (view := a.link_to(b.peer_id)) and view["rtt_ms"] is not None and view, 15, 0.2, "RTT"
    )
    assert measured["loss_pct"] is not None and measured["rtt_ms"] > 0
    published = a.http.post("/api/gossip", json={"topic": "via-turn", "payload": {"hello": "relay"}})
    assert published.status_code == 200, published.text
    wait_for(
        lambda: b.http.get("/api/gossip/messages", params={"topic": "via-turn"}).json()["messages"],
        15,
        0.2,
        "the message at b",
    )

    # Stopping the nodes releases their allocations; coturn then logs what it relayed for each.
    a.close()
    b.close()
    relayed = wait_for(turn.relayed_packets, 20, 0.2, "coturn's usage lines for the closed sessions")
    print(f"coturn relayed {relayed} packets for the two nodes")
    assert relayed > 0


def test_wrong_turn_password_fails_with_an_error_in_words(node_factory, turn: TurnServer) -> None:
    bad_password = relay_flags(turn.ice_servers(password="not-the-password"))
    wrong = node_factory("wrong", extra=bad_password, start=False)
    right = node_factory("right", extra=relay_flags(turn.ice_servers()), start=False)
    start_all([wrong, right])

    as_dialler = assert_error_in_words(wrong.dial(right), "dial from the node with the wrong password")
    as_answerer = assert_error_in_words(right.dial(wrong), "dial to the node with the wrong password")
    print(f"\nwrong TURN password: dialler got {as_dialler}\nanswerer side gave {as_answerer}")

    assert turn.auth_failures() >= 2, turn.log_tail()
    assert turn.allocations() >= 1  # the right node's own allocation succeeded
    for node in (wrong, right):
        assert node.open_links() == [], node.links()
        assert node.http.get("/healthz").json()["links"] == 0


def test_wrong_turn_password_error_names_the_turn_server(node_factory, turn: TurnServer) -> None:
    bad_password = relay_flags(turn.ice_servers(password="not-the-password"))
    wrong = node_factory("wrong", extra=bad_password, start=False)
    right = node_factory("right", extra=relay_flags(turn.ice_servers()), start=False)
    start_all([wrong, right])
    for response in (wrong.dial(right), right.dial(wrong)):
        detail = response.json()["detail"]
        assert "only loopback addresses" not in detail, detail
        assert turn.url() in detail, detail
        assert re.search(r"credential|password|401|unauthori[sz]ed|allocat", detail, re.IGNORECASE), detail
