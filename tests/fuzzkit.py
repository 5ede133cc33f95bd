"""Hypothesis strategies for what a stranger's frame can hold once msgpack has decoded it."""

from __future__ import annotations

from hypothesis import strategies as st

# wire.decode and the gossip decoder unpack with strict_map_key: map keys arrive as str only
scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=True)
    | st.text(max_size=40)
    | st.binary(max_size=64)
)
# a bare scalar half the time: a handler's first check is often "is this a list / a map at all"
values = scalars | st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=6) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)
