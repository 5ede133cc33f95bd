"""Write policies of named documents, kept in the reserved map POLICIES_DOC.

A document's creator writes the entry (name, creator) -> {"created": [wall_ms, logical], "writers": [...]},
plus, for a map resolved otherwise than by the last writer, "resolution" ("ranked" or "keep-all") and "rank"
(PeerIds, highest first, for "ranked"). The resolution is fixed at create time: every replica shows the
same value because it depends only on this signed entry, never on local trust scores.
Each op carries its author's signature and only the creator may write its own entry, so an entry is the
creator's signed word. Two nodes that create one name at once each write an entry; every replica picks the
same one, the earliest-stamped create (ties by creator id), and the other creator's ops are refused there
and listed with the conflicts. A create stamped more than CREATE_RACE_MS before one already known is not a
race but a backdated claim on someone else's document: refused, and held against the peer that sent it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from f0mesh.crdt import HLCTimestamp, LWWMap
from f0mesh.identity import is_peer_id
from f0mesh.state.documents import NAME_RE
from f0mesh.state.peers import PEERS_DOC

POLICIES_DOC = "_policies"
TOPICS_DOC = "_topics"  # topic publish policies (state.topic_policy)
# the node's own maps: no policy may name them, or its enforcement would evict everyone else's ops there
RESERVED_DOCS = frozenset({PEERS_DOC, POLICIES_DOC, TOPICS_DOC})
MAX_WRITERS = 64
CREATE_RACE_MS = 60_000  # creates this close together count as concurrent; further back is backdating
LWW, RANKED, KEEP_ALL = "lww", "ranked", "keep-all"
RESOLUTIONS = (LWW, RANKED, KEEP_ALL)


@dataclass(frozen=True, slots=True)
class Policy:
    name: str
    creator: str
    created: tuple[int, int]
    writers: frozenset[str]  # the creator included
    resolution: str = LWW
    rank: tuple[str, ...] = ()  # for RANKED: writers, highest first

    def allows(self, author: str) -> bool:
        return author in self.writers

    def ranking(self) -> dict[str, int]:
        """Origin -> rank for MVMap.pick: the first named ranks highest, the unranked 0."""
        return {peer: len(self.rank) - i for i, peer in enumerate(self.rank)}

    def entry(self) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "created": list(self.created),
            "writers": sorted(self.writers - {self.creator}),
        }
        if self.resolution != LWW:
            entry.update(resolution=self.resolution, rank=list(self.rank))
        return entry

    def view(self) -> dict[str, Any]:
        return {
            "creator": self.creator,
            "created": list(self.created),
            "writers": sorted(self.writers),
            "resolution": self.resolution,
            "rank": list(self.rank),
        }


def check_resolution(resolution: str, rank: list[str] | tuple[str, ...], writers: Iterable[str]) -> None:
    """ValueError unless the rank list fits the resolution: only "ranked" ranks, and only named writers."""
    if resolution not in RESOLUTIONS:
        raise ValueError(f"resolution must be one of {', '.join(RESOLUTIONS)}")
    if resolution != RANKED and rank:
        raise ValueError(f"only a ranked resolution takes a rank list, not {resolution!r}")
    if resolution == RANKED and not rank:
        raise ValueError("a ranked resolution needs a rank list")
    if len(rank) != len(set(rank)) or not set(rank) <= set(writers):
        raise ValueError("the rank list names distinct writers of the document")


def parse_policy(key: object, author: str, value: object) -> Policy:
    """An entry's meaning; ValueError when malformed or not written by the creator it names."""
    if not (isinstance(key, tuple) and len(key) == 2 and all(isinstance(k, str) for k in key)):
        raise ValueError("a policy key is (name, creator)")
    name, creator = key
    if not NAME_RE.fullmatch(name) or name in RESERVED_DOCS:
        raise ValueError(f"bad document name in a policy: {name[:80]!r}")
    if creator != author:
        raise ValueError(f"the policy of {name!r} by {creator[:60]} was written by {author[:60]}")
    if not isinstance(value, dict) or set(value) not in _ENTRY_FIELDS:
        raise ValueError(f"the policy of {name!r} is not {{created, writers[, resolution, rank]}}")
    created, writers = value["created"], value["writers"]
    resolution, rank = value.get("resolution"), value.get("rank", [])
    if not (
        isinstance(created, list)
        and len(created) == 2
        and all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in created)
    ):
        raise ValueError(f"the policy of {name!r} has a bad create stamp")
    if not isinstance(writers, list) or len(writers) > MAX_WRITERS:
        raise ValueError(f"the policy of {name!r} must list at most {MAX_WRITERS} writers")
    if not all(isinstance(w, str) and is_peer_id(w) for w in writers) or writers != sorted(set(writers)):
        raise ValueError(f"the writers of {name!r} must be sorted distinct PeerIds")
    if resolution == LWW or not isinstance(rank, list) or not all(isinstance(p, str) for p in rank):
        raise ValueError(f"the policy of {name!r} has a bad resolution")
    named = frozenset({creator, *writers})
    resolution = LWW if resolution is None else resolution
    check_resolution(resolution, rank, named)
    return Policy(name, creator, (created[0], created[1]), named, resolution, tuple(rank))


_ENTRY_FIELDS = ({"created", "writers"}, {"created", "writers", "resolution", "rank"})


def stamp(ts: HLCTimestamp) -> tuple[int, int]:
    return (ts.wall_ms, ts.logical)


class Policies:
    """The policies map read by name: which create won, and who lost a race. ``parse`` reads an entry
    (the topic policies of state.topic_policy are read the same way with their own parser)."""

    def __init__(self, crdt: LWWMap, parse: Callable[[object, str, object], Policy] = parse_policy) -> None:
        self.crdt = crdt
        self._parse = parse

    def all(self, name: str) -> list[Policy]:
        """Every valid entry for name, winner first."""
        found = []
        for key, origin, _seq, live, value in self.crdt.records():
            if live and isinstance(key, tuple) and key[:1] == (name,):
                try:
                    found.append(self._parse(key, origin, value))
                except ValueError:
                    continue
        found.sort(key=lambda p: (p.created, p.creator))
        return found

    def winners(self) -> dict[str, Policy]:
        """Every name's winning entry, in one pass over the map."""
        best: dict[str, Policy] = {}
        for key, origin, _seq, live, value in self.crdt.records():
            if not live:
                continue
            try:
                policy = self._parse(key, origin, value)
            except ValueError:
                continue
            held = best.get(policy.name)
            if held is None or (policy.created, policy.creator) < (held.created, held.creator):
                best[policy.name] = policy
        return best

    def effective(self, name: str) -> Policy | None:
        found = self.all(name)
        return found[0] if found else None

    def names(self, keys: Iterable[Any]) -> set[str]:
        return {key[0] for key in keys if isinstance(key, tuple) and key and isinstance(key[0], str)}

    def check_delta(self, delta: LWWMap, max_per_creator: int) -> str | None:
        """Why a peer's delta to the policies map must be refused, or None. A creator may hold at most
        max_per_creator entries (a node holds no more documents than that)."""
        per_creator: dict[str, set[Any]] = {}
        for key, origin, _seq, _live, _value in (*self.crdt.records(), *delta.records()):
            per_creator.setdefault(origin, set()).add(key)
        senders = {origin for _key, origin, *_rest in delta.records()}
        crowded = [c for c in senders if len(per_creator.get(c, ())) > max_per_creator]
        if crowded:
            return f"{crowded[0][:60]} created more than {max_per_creator} policies"
        for key, origin, _seq, live, value in delta.records():
            if not live:
                return f"a policy was deleted ({str(key)[:80]})"
            try:
                policy = self._parse(key, origin, value)
            except ValueError as exc:
                return str(exc)
            ts = delta.timestamp(key)
            if not isinstance(ts, HLCTimestamp) or policy.created > stamp(ts):
                return f"the policy of {policy.name!r} is stamped after its own create"
            mine = self.crdt.get(key)
            if isinstance(mine, dict) and mine.get("created") != list(policy.created):
                return f"the policy of {policy.name!r} by {policy.creator[:60]} changed its create stamp"
            if isinstance(mine, dict) and mine.get("resolution", LWW) != policy.resolution:
                return f"the policy of {policy.name!r} by {policy.creator[:60]} changed its resolution"
            known = self.effective(policy.name)
            if known is not None and known.creator != policy.creator:
                wall = policy.created[0]
                if wall < known.created[0] - CREATE_RACE_MS:
                    return f"{policy.name!r} was created by {known.creator[:60]}; this create is backdated"
        return None
