"""Whatever a neighbour sends as a gossip frame, the engine refuses it or takes it: never an exception
out of ``on_message`` (on a real link the ctl router would log it and drop the frame unaudited), and
honest traffic still flows afterwards.

Frames are drawn as msgpack decodes them (None, bool, 64-bit ints, floats, str, bytes, lists, maps),
shaped like the four message types with their known keys, valid-looking ids and genuine envelopes
mixed in, so the generator reaches past the first type check.
"""

from __future__ import annotations

import asyncio

from fuzzkit import values
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from f0mesh.gossip.envelope import ID_CHARS

from .meshkit import Mesh, wait_until
from .test_attacks import Attacker

B32 = "abcdefghijklmnopqrstuvwxyz234567"

message_ids = st.text(alphabet=B32, min_size=ID_CHARS, max_size=ID_CHARS)
id_lists = st.lists(message_ids | values, max_size=8) | values
topics = st.sampled_from(["t", "*", "state/signed", ""]) | st.text(max_size=12)
control = st.fixed_dictionaries(
    {},
    optional={
        "subs": st.lists(st.tuples(st.booleans(), topics).map(list) | values, max_size=4) | values,
        "graft": st.lists(topics, max_size=4) | values,
        "prune": st.lists(
            topics | st.fixed_dictionaries({"topic": topics}, optional={"px": values}), max_size=4
        )
        | values,
        "catchup": st.booleans() | values,
        "fresh": st.booleans() | values,
        "dontwant": id_lists,
    },
)
frames = st.one_of(
    st.builds(lambda extra, ids: {"type": "ihave", "ids": ids, **extra}, control, id_lists),
    st.builds(lambda extra, ids: {"type": "iwant", "ids": ids, **extra}, control, id_lists),
    st.builds(lambda extra, ids: {"type": "ack", "ids": ids, **extra}, control, id_lists),
    st.builds(
        lambda msgs: {"type": "msgs", "msgs": msgs},
        st.lists(st.binary(max_size=80) | values, max_size=6) | values,
    ),
    st.dictionaries(st.text(max_size=8), values, max_size=4),
    st.builds(lambda t, extra: {"type": t, **extra}, values, control),
)


async def _scenario(batch: list[dict], genuine: int) -> None:
    mesh = Mesh(2)
    await mesh.boot()
    try:
        await mesh.link([(0, 1)])
        attacker = Attacker(mesh)
        await mesh.network.connect(attacker.peer_id, mesh[0].peer_id)
        victim = mesh[0].engine
        envelopes = [attacker.envelope(f"real {i}").encode() for i in range(genuine)]
        for frame in batch:
            if genuine and frame.get("type") == "msgs" and isinstance(frame.get("msgs"), list):
                frame = {**frame, "msgs": [*frame["msgs"], *envelopes]}
            await victim.on_message(attacker.peer_id, frame)  # raises if a frame got past the checks
        await asyncio.wait_for(mesh.settle(), 10)
        honest = await mesh[1].engine.publish("t", "still flowing")
        await wait_until(lambda: mesh[0].has([honest]), 5, "an honest message after the fuzz")
    finally:
        await mesh.close()


@settings(max_examples=80, deadline=None, suppress_health_check=list(HealthCheck), database=None)
@given(batch=st.lists(frames, min_size=1, max_size=6), genuine=st.integers(0, 2))
def test_no_frame_raises_out_of_the_engine(batch: list[dict], genuine: int) -> None:
    asyncio.run(_scenario(batch, genuine))
