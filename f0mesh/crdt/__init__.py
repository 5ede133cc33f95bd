"""Conflict-free replicated state: clocks (HLC, vector clocks) and CRDTs with delta sync.

Pure data structures with no I/O: the node decides when to exchange versions, deltas and bytes.
"""

from f0mesh.crdt.hlc import HLC, ClockSkewError, HLCTimestamp
from f0mesh.crdt.lww_map import LWWMap
from f0mesh.crdt.lww_set import LWWElementSet
from f0mesh.crdt.mv_map import MVMap
from f0mesh.crdt.replicated import CounterError
from f0mesh.crdt.rga import RGA
from f0mesh.crdt.vector_clock import VectorClock

__all__ = [
    "HLC",
    "RGA",
    "ClockSkewError",
    "CounterError",
    "HLCTimestamp",
    "LWWElementSet",
    "LWWMap",
    "MVMap",
    "VectorClock",
]
