"""What every replicated type shares: the set of ops it holds, delta selection, the conflict log, bytes.

Every op is named (origin, seq): origin is the replica or node that made it, seq numbers that origin's ops in
increasing order. Only the origin's owner may mint ops under its name, so (origin, seq) is globally unique.

An op may carry its author's signature over op_bytes(context, origin, seq, content). Signatures travel with
the records they sign (in deltas and saved state), so a relayed delta still proves each op's author; the
CRDTs only carry them, whoever holds the keys signs and verifies (f0mesh.state).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import Any, ClassVar, Self

from f0mesh.crdt.bounds import MAX_SEQ, SEQ_SLACK
from f0mesh.crdt.codec import DECODE_ERRORS, Timestamp, check_ts, element_key, pack, unpack
from f0mesh.crdt.hlc import HLCTimestamp, new_node_id
from f0mesh.crdt.vector_clock import VectorClock

FORMAT = 1
MAX_CONFLICTS = 1000
SIGNATURE_BYTES = 64  # Ed25519

Span = tuple[int, int]
OpId = tuple[str, int]


def op_bytes(context: str, origin: str, seq: int, content: list[Any]) -> bytes:
    """What an op's author signs: the document (context) it belongs to, its name and its content."""
    return pack([context, origin, seq, *content])


class CounterError(ValueError):
    """A counter this replica writes with cannot move on: exhausted here, or pushed too far by a peer."""


def check_seq(seq: object) -> int:
    """A seq (or RGA counter) from bytes: 1..MAX_SEQ, so the next own op can always be encoded."""
    if isinstance(seq, bool) or not isinstance(seq, int) or not 1 <= seq <= MAX_SEQ:
        raise ValueError(f"seq must be an int in 1..{MAX_SEQ}, got {str(seq)[:40]}")
    return seq


def _coalesce(spans: Iterable[Span]) -> list[Span]:
    merged: list[Span] = []
    for lo, hi in sorted(spans):
        if merged and lo <= merged[-1][1]:
            if hi > merged[-1][1]:
                merged[-1] = (merged[-1][0], hi)
        else:
            merged.append((lo, hi))
    return merged


class OpSet:
    """The ops a replica holds (or holds something newer that supersedes them), per origin.

    Stored as disjoint spans (lo, hi] of seq numbers rather than one counter, because a delta holds ops 5..7
    without 1..4: a plain version vector would have to either lie or drop them, while spans keep merging exact
    whatever order deltas arrive in. version() reports only the gap-free prefix, which a peer may rely on.
    """

    __slots__ = ("_spans",)

    def __init__(self) -> None:
        self._spans: dict[str, list[Span]] = {}

    def add(self, origin: str, lo: int, hi: int) -> None:
        """Record seqs lo+1..hi of origin as held."""
        if lo < hi:
            self._spans[origin] = _coalesce([*self._spans.get(origin, ()), (lo, hi)])

    def covers(self, origin: str, seq: int) -> bool:
        return any(lo < seq <= hi for lo, hi in self._spans.get(origin, ()))

    def top(self, origin: str) -> int:
        spans = self._spans.get(origin)
        return spans[-1][1] if spans else 0

    def max_top(self) -> int:
        return max((spans[-1][1] for spans in self._spans.values()), default=0)

    def copy(self) -> OpSet:
        result = OpSet()
        result._spans = {origin: list(spans) for origin, spans in self._spans.items()}
        return result

    def union(self, other: OpSet) -> None:
        for origin, spans in list(other._spans.items()):
            self._spans[origin] = _coalesce([*self._spans.get(origin, ()), *spans])

    def above(self, version: VectorClock) -> OpSet:
        """The part of self that a holder of `version` may lack."""
        result = OpSet()
        for origin, spans in self._spans.items():
            floor = version.get(origin)
            clipped = [(max(lo, floor), hi) for lo, hi in spans if hi > floor]
            if clipped:
                result._spans[origin] = clipped
        return result

    def origins(self) -> list[str]:
        return list(self._spans)

    def keep_only(self, origin: str, seqs: Iterable[int]) -> None:
        """Claim exactly these seqs of origin, so a peer's delta brings back whatever else it holds."""
        spans = _coalesce((seq - 1, seq) for seq in seqs)
        if spans:
            self._spans[origin] = spans
        else:
            self._spans.pop(origin, None)

    def clip(self, origin: str, limit: int) -> None:
        """Forget whatever is claimed for origin above limit."""
        spans = [(lo, min(hi, limit)) for lo, hi in self._spans.get(origin, ()) if lo < limit]
        if spans:
            self._spans[origin] = spans
        else:
            self._spans.pop(origin, None)

    def version(self) -> VectorClock:
        return VectorClock({origin: spans[0][1] for origin, spans in self._spans.items() if spans[0][0] == 0})

    def to_wire(self) -> dict[str, list[int]]:
        return {origin: [n for span in self._spans[origin] for n in span] for origin in sorted(self._spans)}

    @classmethod
    def from_wire(cls, wire: dict[str, list[int]]) -> OpSet:
        if not isinstance(wire, dict):
            raise ValueError("op spans must be a map")
        result = cls()
        for origin, flat in wire.items():
            if not isinstance(origin, str) or not isinstance(flat, list) or not flat or len(flat) % 2:
                raise ValueError(f"bad op spans for origin {origin!r}")
            if any(isinstance(n, bool) or not isinstance(n, int) for n in flat):
                raise ValueError(f"op spans for {origin!r} must be ints")
            spans = list(zip(flat[::2], flat[1::2], strict=True))
            if spans[0][0] < 0 or _coalesce(spans) != spans or any(lo >= hi for lo, hi in spans):
                raise ValueError(f"op spans for {origin!r} are not sorted, disjoint and non-empty")
            check_seq(spans[-1][1])
            result._spans[origin] = spans
        return result

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, OpSet):
            return NotImplemented
        return self._spans == other._spans

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __repr__(self) -> str:
        return f"OpSet({self._spans!r})"


def resolve_origin(ts: Timestamp, origin: str | None, replica_id: str) -> str:
    """Explicit origin, else the HLC node that stamped the op, else this replica."""
    if origin is not None:
        if not isinstance(origin, str) or not origin:
            raise ValueError("origin must be a non-empty str")
        return origin
    if isinstance(ts, HLCTimestamp) and ts.node:
        return ts.node
    return replica_id


class Replicated(ABC):
    """Base of the state-based CRDTs: merge is a join, so replicas converge however states are exchanged.

    Delta sync: a peer sends its version(); delta_since(version) holds only the ops that version lacks, and
    merging it into a replica that had `version` gives the same state as merging the full state. A delta is
    an ordinary state, so merging it anywhere else is safe too: the receiver's version only advances over ops
    it really holds, and a later anti-entropy round fills any gap. A delta also carries its sender's version
    as context, used only to judge whether two ops were concurrent (for the conflict log).
    """

    KIND: ClassVar[str]

    def __init__(self, replica_id: str | None = None) -> None:
        if replica_id is not None and (not isinstance(replica_id, str) or not replica_id):
            raise ValueError("replica_id must be a non-empty str")
        self.replica_id = replica_id or new_node_id()
        self._ops = OpSet()
        self._context = VectorClock()
        self._conflicts: deque[dict[str, Any]] = deque(maxlen=MAX_CONFLICTS)
        self._ts_kind: str | None = None
        self._sigs: dict[OpId, bytes] = {}

    @abstractmethod
    def merge(self, other: Self) -> None: ...

    @abstractmethod
    def delta_since(self, version: VectorClock) -> Self: ...

    @abstractmethod
    def _records_to_wire(self) -> list[Any]: ...

    @abstractmethod
    def _load_records(self, wire: list[Any]) -> None: ...

    @abstractmethod
    def _held_ops(self) -> Iterable[tuple[str, int]]: ...

    @abstractmethod
    def _state(self) -> object: ...

    @abstractmethod
    def _copy_records(self, other: Self) -> None: ...

    @abstractmethod
    def _op_contents(self) -> Iterator[tuple[str, int, list[Any]]]:
        """(origin, seq, content) of every op record held: what op_bytes signs besides the context."""

    @abstractmethod
    def _drop_records(self, ops: set[OpId]) -> None: ...

    # -- signatures ----------------------------------------------------------------------------------

    def signed_ops(self, context: str) -> Iterator[tuple[str, int, bytes, bytes | None]]:
        """(origin, seq, signed bytes, signature or None) of every op record held."""
        for origin, seq, content in self._op_contents():
            yield origin, seq, op_bytes(context, origin, seq, content), self._sigs.get((origin, seq))

    def sign_ops(self, origin: str, context: str, sign: Callable[[bytes], bytes]) -> int:
        """Sign every held op of origin that has no signature yet; returns how many were signed."""
        signed = 0
        for op_origin, seq, data, sig in self.signed_ops(context):
            if op_origin == origin and sig is None:
                self._sigs[(origin, seq)] = sign(data)
                signed += 1
        return signed

    def sign_since(
        self, version: VectorClock, origin: str, context: str, sign: Callable[[bytes], bytes]
    ) -> None:
        """Sign the ops of origin written after `version` (a local write), without scanning the rest."""
        for op_origin, seq, data, sig in self.delta_since(version).signed_ops(context):
            if op_origin == origin and sig is None:
                self._sigs[(origin, seq)] = sign(data)

    def misstamped(self) -> Iterator[OpId]:
        """Ops whose HLC stamp names another node than their origin: an author borrowing someone else's
        clock to win ties (and to be shown as them in the conflict log)."""
        for origin, seq, ts in self._op_stamps():
            if isinstance(ts, HLCTimestamp) and ts.node != origin:
                yield origin, seq

    def _op_stamps(self) -> Iterator[tuple[str, int, Timestamp]]:
        """(origin, seq, timestamp) of every op that has one; list ops have none."""
        return iter(())

    def unsigned(self) -> set[OpId]:
        return {(origin, seq) for origin, seq in self._held_ops() if (origin, seq) not in self._sigs}

    def drop_ops(self, ops: set[OpId]) -> None:
        """Remove these op records (a delta's refused or unsigned ops). Their seqs stay in the op set, so
        anti-entropy does not ask for them again."""
        if ops:
            self._drop_records(ops)
            for op in ops:
                self._sigs.pop(op, None)

    def op_ids(self) -> Iterator[OpId]:
        yield from self._held_ops()

    def evict(self, gone: set[OpId]) -> None:
        """Remove these ops (a write policy refused them after they merged).

        A removed record may have superseded another author's op that this replica then forgot, so every
        other origin except our own claims only the ops still held: the next anti-entropy round brings back
        what the evicted records had displaced.
        """
        if not gone:
            return
        authors = {origin for origin, _seq in gone}
        self.drop_ops(gone)
        held: dict[str, list[int]] = {}
        for origin, seq in self._held_ops():
            held.setdefault(origin, []).append(seq)
        for origin in self._ops.origins():
            if origin != self.replica_id and origin not in authors:
                self._ops.keep_only(origin, held.get(origin, ()))

    def log_refused(self, entries: list[dict[str, Any]]) -> None:
        """Ops a write policy refused, listed with the conflicts."""
        self._conflicts.extend(entries)

    def clone(self) -> Self:
        """An independent replica of this state under the same id, to write into and drop should the write
        be refused. Records are immutable tuples, so only their containers are copied (far cheaper than a
        bytes round trip); the conflict log, local diagnostics, starts empty."""
        other = type(self)(self.replica_id)
        other._ops = self._ops.copy()
        other._context = self._context.copy()
        other._ts_kind = self._ts_kind
        other._sigs = dict(self._sigs)
        self._copy_records(other)
        return other

    def version(self) -> VectorClock:
        """Per origin, the highest seq up to which this replica holds every op."""
        return self._ops.version()

    def conflicts(self) -> list[dict[str, Any]]:
        """Values that lost to a concurrent write during merges here, oldest first (at most MAX_CONFLICTS).

        Local diagnostics, not replicated state: not serialised and not part of equality.
        """
        return list(self._conflicts)

    def to_bytes(self) -> bytes:
        """Also forgets the signatures of ops that a later write superseded."""
        self._sigs = {op: self._sigs[op] for op in self._held_ops() if op in self._sigs}
        sigs: dict[str, list[Any]] = {}  # origin -> [seq, signature, seq, signature, ...]: ids once
        for origin, seq in sorted(self._sigs):
            sigs.setdefault(origin, []).extend((seq, self._sigs[(origin, seq)]))
        return pack(
            [FORMAT, self.KIND, self._ops.to_wire(), self._context.to_dict(), self._records_to_wire(), sigs]
        )

    @classmethod
    def from_bytes(cls, data: bytes, replica_id: str | None = None) -> Self:
        """Decode state from a peer or from disk; anything malformed raises ValueError.

        The replica id is not part of the state (a peer's bytes must not make us write under its name): pass
        this node's own id when restoring from disk.
        """
        obj = cls(replica_id)
        try:
            fmt, kind, ops, context, records, *rest = unpack(data)
            if len(rest) > 1:
                raise ValueError("too many fields")
            if fmt != FORMAT or kind != cls.KIND:
                raise ValueError(f"expected {cls.KIND!r} format {FORMAT}, got {kind!r} format {fmt!r}")
            obj._ops = OpSet.from_wire(ops)
            obj._context = VectorClock.from_dict(context)
            for origin in obj._context.nodes():
                check_seq(obj._context.get(origin))
            if not isinstance(records, list):
                raise ValueError("records must be a list")
            obj._load_records(records)
            obj._load_sigs(rest[0] if rest else {})
        except DECODE_ERRORS as exc:
            raise ValueError(f"malformed {cls.__name__} state: {exc}") from exc
        for origin, seq in obj._held_ops():
            if not obj._ops.covers(origin, seq):
                raise ValueError(f"malformed {cls.__name__} state: op ({origin!r}, {seq}) outside its op set")
        return obj

    def _load_sigs(self, wire: Any) -> None:
        """Signatures saved before this replica signed ops (an older release) are simply absent."""
        if not isinstance(wire, dict):
            raise ValueError("signatures must be a map")
        held = set(self._held_ops())
        for origin, flat in wire.items():
            if not isinstance(flat, list) or len(flat) % 2:
                raise ValueError(f"bad signatures of {str(origin)[:60]!r}")
            for seq, sig in zip(flat[::2], flat[1::2], strict=True):
                if (origin, seq) not in held or not isinstance(sig, bytes) or len(sig) != SIGNATURE_BYTES:
                    raise ValueError(f"bad signature entry for op ({str(origin)[:60]!r}, {str(seq)[:20]})")
                self._sigs[(origin, seq)] = sig

    def seq_room(self) -> int:
        """How many more ops this replica can write under its own id before reaching MAX_SEQ."""
        return MAX_SEQ - self._ops.top(self.replica_id)

    def _next_seq(self, origin: str) -> int:
        seq = self._ops.top(origin) + 1
        if seq > MAX_SEQ:
            raise CounterError(f"{origin!r} has used every seq up to {MAX_SEQ} in this {self.KIND}")
        return seq

    def admit(self, delta: Self) -> None:
        """Make a peer's delta safe to merge into self, or raise CounterError and change nothing.

        Ops under this replica's own id may run at most SEQ_SLACK past what it holds (our next write goes
        on from there, so it must stay far from MAX_SEQ); op spans of any origin count at most SEQ_SLACK
        past the highest op of that origin the delta carries or self holds. Spans are not trimmed exactly
        at the carried ops: an honest delta legitimately spans ops that a later write superseded.
        """
        limit = self._counter_limit()
        own = delta._ops.top(self.replica_id)
        if own > limit:
            raise CounterError(f"ops up to {own} under our own id {self.replica_id!r}, limit {limit}")
        carried: dict[str, int] = {}
        for origin, seq in delta._held_ops():
            carried[origin] = max(carried.get(origin, 0), seq)
        for origin in delta._ops.origins():
            delta._ops.clip(origin, max(carried.get(origin, 0), self._ops.top(origin)) + SEQ_SLACK)

    def _counter_limit(self) -> int:
        return self._ops.top(self.replica_id) + SEQ_SLACK

    def _log_conflicts(self, found: list[dict[str, Any]]) -> None:
        """In canonical key order, so the log does not depend on the order of the peer's records."""
        self._conflicts.extend(sorted(found, key=lambda entry: element_key(entry["key"])))

    def _knows(self, origin: str, seq: int) -> bool:
        return self._ops.covers(origin, seq) or seq <= self._context.get(origin)

    def _check_ts_kind(self, ts: Timestamp) -> str:
        """One timestamp kind per state: a mixed state would fail halfway through a later merge."""
        kind = check_ts(ts)
        if self._ts_kind not in (None, kind):
            raise TypeError(f"this state is stamped with {self._ts_kind} timestamps, not {kind}")
        return kind

    def _admit_ts(self, ts: Timestamp) -> None:
        self._ts_kind = self._check_ts_kind(ts)

    def _prepare_merge(self, other: Replicated) -> None:
        """Refuse a merge up front, so a bad peer state never leaves self half-merged."""
        if type(other) is not type(self):
            raise TypeError(f"cannot merge {type(other).__name__} into {type(self).__name__}")
        if None not in (self._ts_kind, other._ts_kind) and self._ts_kind != other._ts_kind:
            raise TypeError(f"cannot merge {other._ts_kind} timestamps into a state of {self._ts_kind} ones")
        self._ts_kind = self._ts_kind or other._ts_kind

    def _merge_sigs(self, other: Replicated) -> None:
        """Signatures come along with the records; those of records that lost are forgotten at to_bytes."""
        self._sigs.update(other._sigs)

    def _finish_delta(self, delta: Self) -> Self:
        delta._sigs = {op: self._sigs[op] for op in delta._held_ops() if op in self._sigs}
        return delta

    def _new_delta(self, version: VectorClock) -> Self:
        if not isinstance(version, VectorClock):
            raise TypeError(f"expected VectorClock, not {type(version).__name__}")
        delta = type(self)()
        delta._ops = self._ops.above(version)
        delta._context = self.version()
        delta._context.merge(self._context)
        delta._ts_kind = self._ts_kind
        return delta

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return self._ops == other._ops and self._state() == other._state()

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __repr__(self) -> str:
        return f"{type(self).__name__}(replica_id={self.replica_id!r}, version={self.version().to_dict()!r})"
