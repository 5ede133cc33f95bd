"""Every counter and clock value a peer can send us, bounded in one place.

The gossip envelope, the CRDT codec and state sync all take their limits from here, so no path is looser
than another. Each bound sits far below the range where this node's own clock or counters would stop
working (the HLC string form holds a logical counter below 10**10, msgpack an integer below 2**64), so a
value at the very top of what we accept still leaves this node room for a lifetime of its own events.
"""

from __future__ import annotations

LOGICAL_BOUND = 2**32 - 1
"""Highest HLC logical counter accepted from a peer, and issued here: at the bound the clock moves its wall
time on by 1 ms instead (so whatever this node stamps, every peer accepts)."""

MAX_DRIFT_MS = 60_000
"""A remote HLC stamp further ahead of the local wall clock than this is refused (clock_skew)."""

MAX_SEQ = 2**48
"""Highest op sequence number (and RGA counter, and op span end) accepted from a peer or from disk."""

SEQ_SLACK = 2**20
"""How far one delta may move a counter this node writes with beyond what the node already holds: its own
origin's seq (an honest peer holds a few of our ops we lost in a crash, never a million) and, for lists,
the shared Lamport counter. Op spans of other origins may claim at most this far past the ops the delta
carries or this node holds. A peer must send 2**28 deltas to exhaust MAX_SEQ."""
