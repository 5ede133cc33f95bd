"""A Link as the link manager makes one, with no peer behind it: nothing is dialled."""

from __future__ import annotations

from collections.abc import Callable

from f0mesh.rtc.link import Link, LinkSettings


def bare_link(on_state: Callable[[Link], None] = lambda link: None) -> Link:
    return Link(
        peer_id="peer",
        direction="out",
        local_peer_id="me",
        local_url=None,
        settings=LinkSettings(ice_servers=[]),
        on_message=lambda link, message: None,
        on_probe=lambda link, data: None,
        on_state=on_state,
    )
