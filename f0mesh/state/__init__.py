"""Replicated application state and the peer registry, as CRDT documents kept in step over the mesh."""

from f0mesh.state.documents import (
    Document,
    InvalidChange,
    ListChange,
    MapChange,
    SetChange,
    format_id,
    parse_id,
)
from f0mesh.state.manager import STATE_TOPIC, STATE_TOPICS, ReplicatedState, StateParams, StateStore
from f0mesh.state.peers import PEERS_DOC, PeerInfo
from f0mesh.state.sync import STATE_FRAME

__all__ = [
    "PEERS_DOC",
    "STATE_FRAME",
    "STATE_TOPIC",
    "STATE_TOPICS",
    "Document",
    "InvalidChange",
    "ListChange",
    "MapChange",
    "PeerInfo",
    "ReplicatedState",
    "SetChange",
    "StateParams",
    "StateStore",
    "format_id",
    "parse_id",
]
