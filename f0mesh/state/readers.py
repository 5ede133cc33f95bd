"""Pages (f0peer.js) as read-only replicas of the documents they name.

A page keeps no replicated state and is no member of the anti-entropy rounds: it asks its node for
named documents with a ``versions`` message (its own version of each) and gets the deltas it lacks,
then each later change of those documents as the node merges or writes it. Only that: a page never
gets the registry or the write policies, never a document it did not name, and anything else it
sends on the state frame (a delta above all: a page must not leave state on the mesh) is refused.

Bounds: MAX_PAGES pages are served at once (the least recently asking one is forgotten first),
MAX_DOCS_PER_PAGE documents each; a page asks at most REQUEST_BURST times in a row, then one request
every 1/REQUEST_RATE seconds, and what goes beyond is dropped. A page that can no longer be reached
is forgotten at the next push.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from f0mesh.crdt import VectorClock
from f0mesh.state.sync import parse_versions
from f0mesh.trust.rate_limit import TokenBucket

MAX_PAGES = 64
MAX_DOCS_PER_PAGE = 16
REQUEST_RATE = 2.0  # requests per second and page, after the burst
REQUEST_BURST = 8.0

Send = Callable[[str, str, str, VectorClock], Awaitable[VectorClock | None]]
"""``send(page, name, kind, version)``: the delta of that document above version, sent to the page;
returns the version the page holds once it merged it (None: not sent, the page is gone)."""


@dataclass
class _Page:
    bucket: TokenBucket
    held: dict[str, tuple[str, VectorClock]] = field(default_factory=dict)  # name -> (kind, version)


class PageReaders:
    """Which pages read which documents, and what each already holds."""

    def __init__(self, send: Send, refuse: Callable[[str, str, str], None], hidden: frozenset[str]) -> None:
        self._send = send
        self._refuse = refuse  # (page, reason, detail): audited by the caller
        self._hidden = hidden  # documents no page may read
        self._pages: OrderedDict[str, _Page] = OrderedDict()

    def __len__(self) -> int:
        return len(self._pages)

    def reading(self, name: str) -> bool:
        return any(name in page.held for page in self._pages.values())

    async def on_ctl(self, peer_id: str, message: dict[str, Any]) -> None:
        """A state frame from a page: a request for named documents, or refused."""
        if message.get("op") != "versions":
            self._refuse(peer_id, "browser_write", f"a page sent a state {str(message.get('op'))[:20]!r}")
            return
        page = self._pages.pop(peer_id, None) or _Page(TokenBucket(REQUEST_RATE, REQUEST_BURST))
        self._pages[peer_id] = page  # kept (last) even when refused below: its bucket must not refill
        while len(self._pages) > MAX_PAGES:
            self._pages.popitem(last=False)
        if not page.bucket.try_take():
            self._refuse(peer_id, "rate_limited", "a page asked for documents too often")
            return
        try:
            wanted = parse_versions(message, MAX_DOCS_PER_PAGE)
        except ValueError as exc:
            self._refuse(peer_id, "malformed", str(exc))
            return
        hidden = sorted(set(wanted) & self._hidden)
        if hidden:
            self._refuse(peer_id, "hidden", f"a page asked for {hidden[0]!r}, which pages do not read")
            return
        if len(set(page.held) | set(wanted)) > MAX_DOCS_PER_PAGE:
            self._refuse(peer_id, "too_many_documents", f"a page reads at most {MAX_DOCS_PER_PAGE} documents")
            return
        page.held.update(wanted)
        await self._serve(peer_id, page, list(wanted))

    async def push(self, name: str, version: VectorClock) -> None:
        """A document changed here: each page reading it gets what it lacks of it."""
        for peer_id, page in list(self._pages.items()):
            if name in page.held and page.held[name][1] != version:
                await self._serve(peer_id, page, [name])

    async def _serve(self, peer_id: str, page: _Page, names: list[str]) -> None:
        for name in names:
            kind, version = page.held[name]
            held = await self._send(peer_id, name, kind, version)
            if held is None:
                self._pages.pop(peer_id, None)
                return
            page.held[name] = (kind, held)
