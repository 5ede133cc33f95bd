"""Fixtures shared by the whole suite: test services and data directories."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest

from pgserver import PgServer

_db_counter = itertools.count(1)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    """A real PostgreSQL server on 127.0.0.1, started once per run; failing to start fails the test."""
    server = PgServer()
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture
def pg_url(pg_server: PgServer) -> str:
    """A fresh, empty database per test."""
    return pg_server.create_database(f"f0test{next(_db_counter)}")


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path) -> str:
    """Each store test runs on both backends."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'mesh.db'}"
    return request.getfixturevalue("pg_url")


@pytest.fixture
def node_factory(tmp_path) -> Iterator:
    """Start ``f0mesh up`` processes (one by call, or several at once with ``.many``); every one is
    stopped when the test ends, pass or fail."""
    from nodes import NodeFactory

    factory = NodeFactory(tmp_path)
    yield factory
    factory.close()
