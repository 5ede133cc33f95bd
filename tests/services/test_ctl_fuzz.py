"""Any ctl frame a linked stranger sends, of every kind the node serves, is taken or refused inside
its handler: nothing raises out of the dispatch (a link would log it and drop it unaudited) and no
handler's catch-all logs an error. The node is a real one on SQLite; frames are drawn as msgpack
decodes them, shaped like each kind with its keys, real PeerIds (this node's among them) where a
handler checks for one, so the generator reaches past the first checks. Peer exchange trusts
everyone here (--pex-min-trust 0), so records are parsed rather than refused for trust.
"""

from __future__ import annotations

import asyncio
import logging
import os

from fuzzkit import values
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from f0mesh.config import NodeConfig
from f0mesh.identity import Identity
from f0mesh.node import Node

from .kit import FakeLink

STRANGER = Identity.generate().peer_id
OTHER = Identity.generate().peer_id


def frames(me: str) -> st.SearchStrategy[dict]:
    peers = st.sampled_from([me, STRANGER, OTHER]) | values
    urls = st.sampled_from(["http://127.0.0.1:9", "https://127.0.0.1:1/", "", "not a url"]) | values

    def kind(t: str, /, **keys: st.SearchStrategy) -> st.SearchStrategy[dict]:
        """Every key of the kind (each value right or wrong), or any subset of them."""
        body = st.fixed_dictionaries(keys, optional={"extra": values}) | st.fixed_dictionaries(
            {}, optional=keys
        )
        return body.map(lambda b: {"t": t, **b})

    return st.one_of(
        kind(
            "gossip",
            m=st.fixed_dictionaries(
                {"type": st.sampled_from(["msgs", "ack", "ihave", "iwant"]) | values},
                optional={"msgs": values, "ids": values, "subs": values, "graft": values, "prune": values},
            )
            | values,
        ),
        kind(
            "pex",
            records=st.lists(
                st.fixed_dictionaries(
                    {},
                    optional={"peer_id": peers, "url": urls, "seq": values, "sig": values, "at": values},
                )
                | values,
                max_size=4,
            )
            | values,
        ),
        kind(
            "state",
            op=st.sampled_from(["versions", "delta"]) | values,
            versions=st.dictionaries(st.text(max_size=8), values, max_size=3) | values,
            reply=values,
            name=st.sampled_from(["cfg", "state/peers", ""]) | values,
            kind=st.sampled_from(["map", "set", "list"]) | values,
            seq=values,
            part=values,
            parts=values,
            data=values,
        ),
        kind(
            "sig",
            to=peers,
            **{"from": peers},
            via=st.lists(peers, max_size=3) | values,
            desc=st.fixed_dictionaries({"type": st.sampled_from(["offer", "answer"]) | values, "sdp": values})
            | values,
            error=values,
            re=values,
        ),
        kind(
            "direct",
            id=st.binary(min_size=16, max_size=16) | values,
            to=peers,
            eph=st.binary(min_size=32, max_size=32) | values,
            ct=st.binary(max_size=64) | values,
            hops=st.integers(-1, 9) | values,
        ),
        st.builds(
            lambda t, b: {**b, "t": t}, values, st.dictionaries(st.text(max_size=6), values, max_size=3)
        ),
    )


class _Errors(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(f"{record.name}: {record.getMessage()}")


def test_no_ctl_frame_raises_or_logs_an_error(tmp_path) -> None:
    loop = asyncio.new_event_loop()
    node = Node(NodeConfig(data_dir=tmp_path, admin_token="t" * 32, pex_min_trust=0.0))
    errors = _Errors()
    logging.getLogger().addHandler(errors)
    try:
        loop.run_until_complete(asyncio.wait_for(node.start(), 60))

        @settings(
            max_examples=int(os.environ.get("CTL_FUZZ_EXAMPLES", "200")),
            deadline=None,
            suppress_health_check=list(HealthCheck),
            database=None,
        )
        @given(batch=st.lists(frames(node.peer_id), min_size=1, max_size=5))
        def run(batch: list[dict]) -> None:
            # a stranger per example: the offenders list soon blocks one that keeps sending junk, and
            # a blocked peer's frames never reach a handler
            link = FakeLink(Identity.generate().peer_id)

            async def send() -> None:
                for frame in batch:
                    await node.link_events.link_message(link, frame)
                await asyncio.sleep(0)  # the audit rows and refusals it spawned

            loop.run_until_complete(asyncio.wait_for(send(), 30))
            assert not errors.records, errors.records

        run()
        loop.run_until_complete(asyncio.sleep(0.2))
        assert not errors.records, errors.records
    finally:
        logging.getLogger().removeHandler(errors)
        loop.run_until_complete(asyncio.wait_for(node.stop(), 60))
        loop.close()
