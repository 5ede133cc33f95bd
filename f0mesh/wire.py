"""Binary encoding of every message on a link's ``ctl`` channel.

A message is a msgpack map with a type tag ``t``. msgpack rather than JSON because gossip
envelopes travel as opaque signed bytes inside these maps: signatures cover those exact bytes,
and a binary container carries them without base64 or re-encoding.
"""

from __future__ import annotations

from typing import Any

import msgpack

from f0mesh import WIRE_VERSION

# Wire 1.1: peer records in the map form, direct frames, signed state ops. A 1.0 node holds each of
# these against its sender (an unknown kind, a record it cannot parse, an unsigned op it drops as
# forged), so they go only to peers whose hello says 1.1 or later.
V1_1 = (1, 1)


class WireError(ValueError):
    """A frame that does not decode to a well-formed message."""


def encode(message: dict[str, Any]) -> bytes:
    return msgpack.packb(message, use_bin_type=True)


def decode(data: bytes) -> dict[str, Any]:
    """Strict decode: a map with a string ``t``; anything else is a WireError, never another exception."""
    try:
        message = msgpack.unpackb(data, raw=False, strict_map_key=True, use_list=True)
    except Exception as exc:  # msgpack raises several unrelated types on garbage
        raise WireError(f"undecodable frame: {type(exc).__name__}") from exc
    if not isinstance(message, dict) or not isinstance(message.get("t"), str):
        raise WireError("frame is not a typed message")
    return message


def hello(peer_id: str, url: str | None) -> dict[str, Any]:
    return {"t": "hello", "v": list(WIRE_VERSION), "peer_id": peer_id, "url": url}


def version_compatible(remote: Any) -> bool:
    """Only the major version must match; minors add optional fields."""
    return (
        isinstance(remote, list)
        and len(remote) == 2
        and all(isinstance(x, int) for x in remote)
        and remote[0] == WIRE_VERSION[0]
    )


def speaks(remote: Any, version: tuple[int, int]) -> bool:
    """Whether a peer whose hello said ``remote`` reads what ``version`` added."""
    return version_compatible(remote) and tuple(remote) >= version
