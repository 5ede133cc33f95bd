"""LogThrottle: one line per key and interval, with the count of what it held back."""

from __future__ import annotations

import logging

import pytest

from f0mesh.log_throttle import LogThrottle


def test_one_line_per_key_and_interval_then_the_count_of_the_rest(caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]
    throttle = LogThrottle(logging.getLogger("t.throttle"), interval_s=5.0, clock=lambda: now[0])
    with caplog.at_level(logging.INFO, logger="t.throttle"):
        assert throttle.info(("peer-a", "bad"), "bad thing from %s", "peer-a")
        for _ in range(99):
            assert not throttle.info(("peer-a", "bad"), "bad thing from %s", "peer-a")
        assert throttle.warning(("peer-b", "bad"), "bad thing from %s", "peer-b")  # another key: its own line
        now[0] = 5.0
        assert throttle.info(("peer-a", "bad"), "bad thing from %s", "peer-a")
        now[0] = 10.0
        assert throttle.info(("peer-a", "bad"), "bad thing from %s", "peer-a")
    assert [r.getMessage() for r in caplog.records] == [
        "bad thing from peer-a",
        "bad thing from peer-b",
        "bad thing from peer-a (99 more like it not logged)",
        "bad thing from peer-a",
    ]
    assert [r.levelno for r in caplog.records][:2] == [logging.INFO, logging.WARNING]


def test_keys_are_bounded(caplog: pytest.LogCaptureFixture) -> None:
    throttle = LogThrottle(logging.getLogger("t.bounded"), max_keys=3, clock=lambda: 0.0)
    with caplog.at_level(logging.INFO, logger="t.bounded"):
        for key in range(10):
            throttle.info(key, "key %d", key)
        assert not throttle.info(9, "key %d", 9)
        assert throttle.info(0, "key %d", 0)  # forgotten, so it logs again
    assert len(caplog.records) == 11
