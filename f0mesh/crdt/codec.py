"""Deterministic msgpack encoding for CRDT state: equal states must give equal bytes on every replica."""

from __future__ import annotations

from typing import Any

import msgpack

from f0mesh.crdt.bounds import LOGICAL_BOUND
from f0mesh.crdt.hlc import HLCTimestamp

Element = str | int | bytes | tuple[Any, ...]
Timestamp = HLCTimestamp | int | float | str

_HLC_EXT = 1
_INT_MIN = -(2**63)
_INT_MAX = 2**64 - 1
DECODE_ERRORS = (ValueError, TypeError, KeyError, IndexError, OverflowError, msgpack.UnpackException)


def _default(obj: object) -> msgpack.ExtType:
    if isinstance(obj, HLCTimestamp):
        return msgpack.ExtType(_HLC_EXT, obj.to_bytes())
    raise TypeError(f"cannot serialise {type(obj).__name__}")


def _ext_hook(code: int, data: bytes) -> HLCTimestamp:
    if code == _HLC_EXT:
        ts = HLCTimestamp.from_bytes(data)
        if ts.logical > LOGICAL_BOUND:
            raise ValueError(f"HLC logical counter {ts.logical} is above {LOGICAL_BOUND}")
        return ts
    raise ValueError(f"unknown msgpack extension type {code}")


def pack(obj: object) -> bytes:
    """Encode a structure whose maps the caller has already put in a canonical order."""
    return msgpack.packb(obj, default=_default, use_bin_type=True)


def unpack(data: bytes) -> Any:
    return msgpack.unpackb(data, ext_hook=_ext_hook, raw=False, strict_map_key=False)


def _check_int(value: int) -> None:
    if not _INT_MIN <= value <= _INT_MAX:
        raise ValueError(f"integer {value} does not fit msgpack's 64 bits")


def check_element(element: object) -> None:
    """Set elements and map keys: str, int, bytes or tuples of them.

    Floats and bools are refused because 1 == 1.0 == True would make one Python key stand for three different
    encodings, and replicas would then serialise the same state differently.
    """
    if isinstance(element, tuple):
        for item in element:
            check_element(item)
    elif isinstance(element, bool) or not isinstance(element, str | int | bytes):
        raise TypeError(f"elements must be str, int, bytes or tuples of them, not {type(element).__name__}")
    elif isinstance(element, int):
        _check_int(element)


def freeze(raw: Any) -> Any:
    """Undo msgpack's tuple -> list conversion so a decoded element is hashable again."""
    if isinstance(raw, list):
        return tuple(freeze(item) for item in raw)
    return raw


def element_key(element: Element) -> bytes:
    """Sort key for elements of mixed types."""
    return msgpack.packb(element, use_bin_type=True)


def check_ts(ts: object) -> str:
    """Validate a timestamp and name its kind; values of different kinds do not compare with each other."""
    if isinstance(ts, bool) or not isinstance(ts, HLCTimestamp | int | float | str):
        raise TypeError(f"timestamps must be HLCTimestamp, int, float or str, not {type(ts).__name__}")
    if isinstance(ts, float) and ts != ts:
        raise ValueError("a NaN timestamp is not ordered")
    if isinstance(ts, int):
        _check_int(ts)
    if isinstance(ts, HLCTimestamp):
        return "HLCTimestamp"
    return "str" if isinstance(ts, str) else "number"


def _normalise(value: Any) -> Any:
    if value is None or isinstance(value, bool | str | bytes | float):
        return value
    if isinstance(value, int):
        _check_int(value)
        return value
    if isinstance(value, list | tuple):
        return [_normalise(item) for item in value]
    if isinstance(value, dict):
        for key in value:
            if not isinstance(key, str):
                raise TypeError(f"object keys must be str, not {type(key).__name__}")
        return {key: _normalise(value[key]) for key in sorted(value)}
    raise TypeError(
        f"values must be JSON-like (None, bool, int, float, str, bytes, list, dict), "
        f"not {type(value).__name__}"
    )


def pack_value(value: Any) -> bytes:
    """Canonical bytes of a JSON-like value (sorted object keys); also a copy the caller cannot mutate."""
    return msgpack.packb(_normalise(value), use_bin_type=True)


def unpack_value(data: bytes) -> Any:
    return msgpack.unpackb(data, raw=False)


def check_value_bytes(data: object) -> bytes:
    """Validate value bytes from the wire: they must be exactly what pack_value would produce."""
    if not isinstance(data, bytes) or pack_value(unpack_value(data)) != data:
        raise ValueError("value bytes are not a canonical encoding")
    return data


def pack_array(items: list[bytes]) -> bytes:
    """Join already-encoded values into one msgpack array, so decoding a long list is a single C call."""
    return msgpack.Packer().pack_array_header(len(items)) + b"".join(items)
