"""The link registry's rules without aiortc: glare, replacement, holds, caps and redial backoff."""

from __future__ import annotations

import random
from dataclasses import dataclass

import pytest

from f0mesh.errors import ConflictError, NotFoundError, PolicyError, RateLimitedError
from f0mesh.rtc.close_reason import CloseReason
from f0mesh.rtc.link_state import LinkState
from f0mesh.rtc.registry import LinkRegistry, RegistryParams

SMALL, LARGE = "A-small", "B-large"  # the registry compares PeerIds as strings


@dataclass
class FakeLink:
    peer_id: str
    direction: str = "out"
    state: LinkState = LinkState.CONNECTING
    cause: CloseReason | None = None
    remote_url: str | None = None
    created_at: float = 0.0
    closed_at: float | None = None

    def end(self, cause: CloseReason, state: LinkState = LinkState.CLOSED, at: float = 1.0) -> FakeLink:
        self.state, self.cause, self.closed_at = state, cause, at
        return self


class NoJitter(random.Random):
    def uniform(self, a: float, b: float) -> float:
        return 1.0


def registry(me: str = SMALL, **params: float) -> LinkRegistry[FakeLink]:
    return LinkRegistry(me, RegistryParams(**params), rng=NoJitter())


def test_glare_the_smaller_side_refuses_an_offer_while_its_own_dial_is_live() -> None:
    reg = registry(SMALL)
    reg.add(FakeLink(LARGE, "out"))
    with pytest.raises(ConflictError) as refused:
        reg.check_offer(LARGE, blocked=False)
    assert refused.value.code == "glare"


def test_glare_the_larger_side_lets_the_smaller_offer_replace_its_dial() -> None:
    reg = registry(LARGE)
    mine = FakeLink(SMALL, "out")
    reg.add(mine)
    reg.check_offer(SMALL, blocked=False)
    theirs = FakeLink(SMALL, "in")
    assert reg.add(theirs) is mine, "the replaced live link is handed back to be closed"
    assert reg.get(SMALL) is theirs
    assert not reg.discard(mine), "a replaced link is no longer the registry's to discard"


def test_the_smaller_side_takes_a_new_offer_over_a_link_it_answered() -> None:
    reg = registry(SMALL)
    old = FakeLink(LARGE, "in", LinkState.OPEN)
    reg.add(old)
    reg.check_offer(LARGE, blocked=False)  # the peer restarted and offers again
    assert reg.add(FakeLink(LARGE, "in")) is old


def test_a_dead_link_is_replaced_without_being_closed_and_does_not_count() -> None:
    reg = registry(SMALL, max_links=1)
    reg.add(FakeLink(LARGE, "out").end(CloseReason.HEARTBEAT, LinkState.FAILED))
    reg.check_offer(LARGE, blocked=False)
    assert reg.add(FakeLink(LARGE, "in")) is None


def test_one_node_does_not_link_to_itself_nor_to_a_blocked_peer() -> None:
    reg = registry(SMALL)
    with pytest.raises(ConflictError) as own:
        reg.check_dial(SMALL, blocked=False)
    assert own.value.code == "self_dial"
    with pytest.raises(PolicyError):
        reg.check_dial(LARGE, blocked=True)
    with pytest.raises(PolicyError):
        reg.check_offer(LARGE, blocked=True)


def test_an_operators_close_holds_the_peer_until_it_is_dialled_again() -> None:
    reg = registry(SMALL)
    reg.operator_dial(LARGE, "http://b")
    reg.close_for_good(LARGE, hold=True)
    assert not reg.is_wanted(LARGE)
    with pytest.raises(PolicyError):
        reg.check_offer(LARGE, blocked=False)
    reg.operator_dial(LARGE, "http://b")
    reg.check_offer(LARGE, blocked=False)
    assert reg.wanted_url(LARGE) == "http://b"


def test_a_prune_does_not_hold_and_release_lifts_a_hold() -> None:
    reg = registry(SMALL)
    reg.close_for_good(LARGE, hold=False)
    reg.check_offer(LARGE, blocked=False)
    reg.close_for_good(LARGE, hold=True)
    reg.release(LARGE)
    reg.check_offer(LARGE, blocked=False)


def test_offers_are_capped_by_live_links_and_by_offers_being_answered() -> None:
    reg = registry("z-me", max_links=3, max_pending_offers=2)
    answering = FakeLink("p2", "in")
    reg.add(FakeLink("p1", "in"))
    reg.add(answering)
    with pytest.raises(RateLimitedError, match="2 offers are already being answered"):
        reg.check_offer("p9", blocked=False)
    answering.state = LinkState.OPEN
    reg.check_offer("p9", blocked=False)
    reg.add(FakeLink("p3", "out"))  # a dial of this node's own is not an offer being answered
    with pytest.raises(RateLimitedError, match="already has 3 links"):
        reg.check_offer("p9", blocked=False)
    reg.check_offer("p3", blocked=False)  # a peer with a live link may replace it at the cap


def test_a_new_dial_needs_an_address_and_room_among_open_links() -> None:
    reg = registry(SMALL, max_links=1)
    with pytest.raises(NotFoundError):
        reg.check_new_dial(LARGE, None, [])
    reg.check_new_dial(LARGE, None, ["relay"])
    other = FakeLink("p1", state=LinkState.CONNECTING)
    reg.add(other)
    reg.check_new_dial(LARGE, "http://b", [])  # connecting links do not count against dials
    other.state = LinkState.OPEN
    with pytest.raises(RateLimitedError):
        reg.check_new_dial(LARGE, "http://b", [])


def test_an_open_link_makes_its_peer_wanted_and_its_failure_asks_for_a_redial() -> None:
    reg = registry(SMALL)
    link = FakeLink(LARGE, "in", LinkState.OPEN, remote_url="http://b")
    reg.add(link)
    assert reg.changed(link) is False
    assert reg.wanted() == {LARGE: "http://b"}
    assert reg.changed(link.end(CloseReason.HEARTBEAT, LinkState.FAILED)) is True


def test_no_redial_for_a_peer_that_closed_for_good_a_replaced_link_or_a_stranger() -> None:
    reg = registry(SMALL)
    link = FakeLink(LARGE, "in", LinkState.OPEN)
    reg.add(link)
    reg.changed(link)
    assert reg.changed(link.end(CloseReason.CLOSED_BY_PEER)) is False
    assert not reg.is_wanted(LARGE), "a peer whose operator closed the link is not redialled"

    reg.operator_dial(LARGE, "http://b")
    old = FakeLink(LARGE, "out")
    reg.add(old)
    reg.add(FakeLink(LARGE, "in"))
    assert reg.changed(old.end(CloseReason.REPLACED)) is False

    stranger = FakeLink("C-stranger", "in")
    reg.add(stranger)
    assert reg.changed(stranger.end(CloseReason.CONNECT_TIMEOUT, LinkState.FAILED)) is False


def test_redial_backoff_doubles_to_the_cap_and_an_open_link_resets_it() -> None:
    reg = registry(SMALL, redial_base_s=1.0, redial_max_s=5.0, redial_give_up_s=100.0)
    reg.operator_dial(LARGE, "http://b")
    assert [reg.redial_delay(LARGE, now=t) for t in range(5)] == [1.0, 2.0, 4.0, 5.0, 5.0]
    link = FakeLink(LARGE, state=LinkState.OPEN)
    reg.add(link)
    reg.changed(link)
    assert reg.redial_delay(LARGE, now=50.0) == 1.0


def test_redial_backoff_is_jittered_within_a_fifth() -> None:
    reg: LinkRegistry[FakeLink] = LinkRegistry(SMALL, RegistryParams(), rng=random.Random(7))
    reg.operator_dial(LARGE, None)
    delays = [reg.redial_delay(LARGE, now=0.0) for _ in range(3)]
    for delay, nominal in zip(delays, [1.0, 2.0, 4.0], strict=True):
        assert delay is not None and 0.8 * nominal <= delay <= 1.2 * nominal
    assert delays != [1.0, 2.0, 4.0]


def test_redialling_gives_up_after_its_deadline_and_forgets_the_peer() -> None:
    reg = registry(SMALL, redial_give_up_s=60.0)
    reg.operator_dial(LARGE, "http://b")
    assert reg.redial_delay(LARGE, now=1000.0) is not None
    assert reg.redial_delay(LARGE, now=1060.0) is not None
    assert reg.redial_delay(LARGE, now=1060.5) is None
    assert not reg.is_wanted(LARGE)
    reg.operator_dial(LARGE, "http://b")
    assert reg.redial_delay(LARGE, now=2000.0) == 1.0, "dialled again: a fresh backoff"


def test_collect_forgets_dead_links_past_retention_and_keeps_live_ones() -> None:
    reg = registry(SMALL)
    reg.add(FakeLink("p-old").end(CloseReason.PEER_LEFT, at=10.0))
    reg.add(FakeLink("p-new").end(CloseReason.PEER_LEFT, at=30.0))
    reg.add(FakeLink("p-live", state=LinkState.OPEN))
    assert reg.collect(closed_before=20.0) == 1
    assert {link.peer_id for link in reg.links()} == {"p-new", "p-live"}
