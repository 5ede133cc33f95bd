"""Probe protocol state, independent of the transport that carries it.

A sender stamps each ping with a sequence number and its own clock; the answerer echoes both and adds
its receive time in *its* clock. RTT uses only the sender's clock; jitter uses the difference of send
and peer-receive times so the clock offset between the two peers cancels (RFC 3550 §6.4.1).

Probes travel on an unreliable DataChannel (``maxRetransmits=0``), so a probe is either answered before
``timeout_s`` or counted lost exactly once: a late answer is recognised and dropped, never resurrected.

Clocks are injectable callables returning seconds (``time.monotonic`` by default, as asyncio uses);
payload timestamps are milliseconds as floats.
"""

from __future__ import annotations

import math
import time
from array import array
from bisect import bisect_left
from collections import OrderedDict
from collections.abc import Callable, Mapping
from enum import StrEnum
from typing import Any

import msgpack

from f0mesh.errors import F0MeshError
from f0mesh.qos.estimators import JitterEstimator, LossEstimator, RttEstimator

Clock = Callable[[], float]

DEFAULT_TIMEOUT_S = 2.0
# A ping encodes to ~13 bytes and a pong to ~22; anything much larger is not a probe.
MAX_PROBE_BYTES = 64
_PING_TAG = 0
_PONG_TAG = 1


class ProbeError(F0MeshError, ValueError):
    """A malformed probe; raised instead of letting a peer's bytes crash the receive path."""

    code = "bad_probe"


class ProbeOutcome(StrEnum):
    """What a pong did to the sender's state; only ANSWERED feeds the estimators."""

    ANSWERED = "answered"
    LATE = "late"  # the probe was already counted lost
    DUPLICATE = "duplicate"  # the probe was already answered
    UNKNOWN = "unknown"  # never sent, or the echoed t_send does not match what was sent


def _check_seq(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ProbeError(f"probe seq must be a non-negative int, got {value!r}")
    return value


def _check_ms(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ProbeError(f"probe {name} must be a finite number of ms, got {value!r}")
    return float(value)


def _field(msg: Mapping[str, Any], name: str) -> Any:
    try:
        return msg[name]
    except (KeyError, TypeError) as exc:
        raise ProbeError(f"probe is missing {name!r}") from exc


def answer_ping(ping: Mapping[str, Any], clock: Clock = time.monotonic) -> dict[str, Any]:
    """Build the responder's pong: the ping echoed plus the receive time in the responder's clock."""
    t_recv = clock() * 1000.0
    return {
        "seq": _check_seq(_field(ping, "seq")),
        "t_send": _check_ms("t_send", _field(ping, "t_send")),
        "t_recv_peer": t_recv,
    }


def is_pong(msg: Mapping[str, Any]) -> bool:
    return "t_recv_peer" in msg


def encode_probe(msg: Mapping[str, Any]) -> bytes:
    """Pack a ping or pong as a tagged msgpack array, smaller than a map on a per-second channel."""
    seq = _check_seq(_field(msg, "seq"))
    t_send = _check_ms("t_send", _field(msg, "t_send"))
    if is_pong(msg):
        fields: list[Any] = [_PONG_TAG, seq, t_send, _check_ms("t_recv_peer", msg["t_recv_peer"])]
    else:
        fields = [_PING_TAG, seq, t_send]
    return msgpack.packb(fields, use_bin_type=True)


def decode_probe(data: bytes) -> dict[str, Any]:
    """Unpack bytes from the probe channel into a ping or pong dict; anything else raises ProbeError."""
    if len(data) > MAX_PROBE_BYTES:
        raise ProbeError(f"probe of {len(data)} bytes exceeds {MAX_PROBE_BYTES}")
    try:
        fields = msgpack.unpackb(data, raw=False, strict_map_key=True)
    except (ValueError, msgpack.UnpackException) as exc:
        raise ProbeError(f"probe is not msgpack: {exc}") from exc
    if not isinstance(fields, list) or not fields:
        raise ProbeError("probe must be a non-empty array")
    tag = fields[0]
    if tag == _PING_TAG and len(fields) == 3:
        return {"seq": _check_seq(fields[1]), "t_send": _check_ms("t_send", fields[2])}
    if tag == _PONG_TAG and len(fields) == 4:
        return {
            "seq": _check_seq(fields[1]),
            "t_send": _check_ms("t_send", fields[2]),
            "t_recv_peer": _check_ms("t_recv_peer", fields[3]),
        }
    raise ProbeError(f"unknown probe layout: tag {tag!r} with {len(fields)} fields")


class ProbeSender:
    """Sender side: numbers pings, matches pongs, declares timeouts and feeds the estimators.

    A probe is lost once its age reaches ``timeout_s``; the verdict depends on time alone, not on when
    ``expire`` happens to be called, because every entry point expires first. Memory stays bounded:
    outstanding probes by the timeout (and ``max_outstanding``), remembered losses by ``remember_lost``.
    """

    def __init__(
        self,
        clock: Clock = time.monotonic,
        *,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        rtt: RttEstimator | None = None,
        jitter: JitterEstimator | None = None,
        loss: LossEstimator | None = None,
        max_outstanding: int = 1024,
        remember_lost: int = 1024,
    ) -> None:
        if timeout_s <= 0:
            raise ValueError("timeout_s must be positive")
        self._clock = clock
        self.timeout_ms = timeout_s * 1000.0
        self.rtt = rtt if rtt is not None else RttEstimator()
        self.jitter = jitter if jitter is not None else JitterEstimator()
        self.loss = loss if loss is not None else LossEstimator()
        self._max_outstanding = max_outstanding
        self._remember_lost = remember_lost
        self._next_seq = 0
        self._outstanding: OrderedDict[int, float] = OrderedDict()
        # The latest lost seqs, ascending (probes are declared lost oldest first): 8 bytes each, where
        # an OrderedDict of ints held ~115, i.e. ~116 KiB per link once a lossy link had lost 1024.
        self._lost = array("Q")

    @property
    def outstanding(self) -> int:
        return len(self._outstanding)

    def _now_ms(self) -> float:
        return self._clock() * 1000.0

    def _declare_lost(self, seq: int) -> None:
        del self._outstanding[seq]
        self._lost.append(seq)
        if len(self._lost) > self._remember_lost:
            del self._lost[0]  # a memmove of at most remember_lost * 8 bytes, once per lost probe
        self.loss.on_lost()

    def _was_lost(self, seq: int) -> bool:
        i = bisect_left(self._lost, seq)
        return i < len(self._lost) and self._lost[i] == seq

    def expire(self) -> int:
        """Count every probe whose age reached the timeout as lost; return how many were."""
        now = self._now_ms()
        expired = 0
        # Insertion order is send order, so the oldest probes come first.
        while self._outstanding:
            seq, t_send = next(iter(self._outstanding.items()))
            if now - t_send < self.timeout_ms:
                break
            self._declare_lost(seq)
            expired += 1
        return expired

    def ping(self) -> dict[str, Any]:
        """Return the next ping payload and start its timeout."""
        self.expire()
        while len(self._outstanding) >= self._max_outstanding:
            self._declare_lost(next(iter(self._outstanding)))
        seq = self._next_seq
        self._next_seq += 1
        t_send = self._now_ms()
        self._outstanding[seq] = t_send
        self.loss.on_sent()
        return {"seq": seq, "t_send": t_send}

    def on_pong(self, pong: Mapping[str, Any]) -> ProbeOutcome:
        """Match a pong to its ping; only a first, timely, consistent answer updates the estimators."""
        seq = _check_seq(_field(pong, "seq"))
        t_send_echo = _check_ms("t_send", _field(pong, "t_send"))
        t_recv_peer = _check_ms("t_recv_peer", _field(pong, "t_recv_peer"))
        self.expire()
        t_send = self._outstanding.get(seq)
        if t_send is None:
            if self._was_lost(seq):
                return ProbeOutcome.LATE
            if seq < self._next_seq:
                return ProbeOutcome.DUPLICATE
            return ProbeOutcome.UNKNOWN
        if t_send_echo != t_send:
            return ProbeOutcome.UNKNOWN
        del self._outstanding[seq]
        self.rtt.add(self._now_ms() - t_send)
        self.jitter.add(t_send, t_recv_peer)
        self.loss.on_answered()
        return ProbeOutcome.ANSWERED
