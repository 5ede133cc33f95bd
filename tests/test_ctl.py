"""The ctl router: registration rules and dispatch of hostile kinds."""

from __future__ import annotations

import pytest

from f0mesh.ctl import CtlKind, CtlRouter


async def test_dispatch_reaches_sync_and_async_handlers() -> None:
    router = CtlRouter()
    seen: list[tuple[str, str]] = []

    def on_pex(peer: str, message: dict) -> None:
        seen.append((peer, message["t"]))

    async def on_state(peer: str, message: dict) -> None:
        seen.append((peer, message["t"]))

    router.register(CtlKind.PEX, on_pex)
    router.register(CtlKind.STATE, on_state)
    assert await router.dispatch("P1", {"t": "pex"})
    assert await router.dispatch("P2", {"t": "state"})
    assert seen == [("P1", "pex"), ("P2", "state")]
    assert router.kinds() == ["pex", "state"]


@pytest.mark.parametrize("kind", [None, 7, b"pex", "nobody-registered", "x" * 10_000, ["pex"]])
async def test_unknown_or_malformed_kinds_are_dropped(kind: object) -> None:
    router = CtlRouter()
    called: list[object] = []
    router.register(CtlKind.PEX, lambda peer, m: called.append(m))
    assert not await router.dispatch("P1", {"t": kind})
    assert called == []


def test_a_kind_has_one_handler_and_a_bounded_name() -> None:
    router = CtlRouter()
    router.register("bench", lambda peer, m: None)
    with pytest.raises(ValueError):
        router.register("bench", lambda peer, m: None)
    with pytest.raises(ValueError):
        router.register("", lambda peer, m: None)
    with pytest.raises(ValueError):
        router.register("k" * 33, lambda peer, m: None)
    router.unregister("bench")
    router.register("bench", lambda peer, m: None)


def test_kind_values_are_append_only() -> None:
    """Shipped values must never change: peers of other versions rely on them."""
    assert [k.value for k in CtlKind][:7] == ["hello", "hb", "bye", "gossip", "pex", "state", "sig"]
