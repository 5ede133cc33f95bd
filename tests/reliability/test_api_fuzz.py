"""Every operation of the node's own OpenAPI schema, fuzzed by schemathesis against a running node:
no 500, no hang, and every 4xx says in words what was wrong. Without the token, admin operations
always answer 401, whatever the body."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from nodes import TOKEN, NodeProcess

EXAMPLES = 60
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def fuzz_node(tmp_path_factory) -> NodeProcess:
    node = NodeProcess(tmp_path_factory.mktemp("fuzz"), extra=["--dial-allow", "127.0.0.0/8"]).start()
    yield node
    node.close()


@pytest.fixture(scope="module")
def api_schema(fuzz_node: NodeProcess):
    # The event streams never end by design (a valid request streams until the client leaves);
    # everything else is fuzzed.
    schema = schemathesis.openapi.from_url(f"{fuzz_node.url}/openapi.json")
    return schema.exclude(path="/api/events").exclude(path="/api/gossip/subscribe")


def _check(response) -> None:
    assert response.status_code < 500, (response.status_code, response.text[:500])
    if response.status_code >= 400:
        body = response.json()
        assert isinstance(body.get("error"), str) and body["error"]
        assert isinstance(body.get("detail"), str) and body["detail"].strip()


def _fuzz(api_schema, examples: int, call) -> int:
    """Run ``call(case)`` on generated cases of every operation; returns how many ran."""
    ran = 0
    for result in api_schema.get_all_operations():
        operation = result.ok()

        @given(case=operation.as_strategy())
        @settings(
            max_examples=examples, deadline=None, suppress_health_check=list(HealthCheck), database=None
        )
        def run(case) -> None:
            nonlocal ran
            ran += 1
            call(case)

        run()
    return ran


def test_fuzz_with_token(api_schema) -> None:
    ran = _fuzz(api_schema, EXAMPLES, lambda case: _check(case.call(headers=AUTH, timeout=30)))
    assert ran >= 500


def _dot_segment(case) -> bool:
    """A path parameter of "." or ".." is a dot segment, which the client's URL normalisation removes
    (RFC 3986 §5.2.4): the request then names another path, often none (404 before any token check)."""
    return any(str(value) in (".", "..") for value in (case.path_parameters or {}).values())


def _no_route(case, response) -> bool:
    """The request as sent names no route at all (a path parameter holding a newline, which no route's
    pattern matches): the app's own 404, and the same with the token, so no admin operation ran."""
    if response.status_code != 404 or response.json().get("detail") != "Not Found":
        return False
    again = case.call(headers=AUTH, timeout=30)
    return again.status_code == 404 and again.json().get("detail") == "Not Found"


def test_fuzz_without_token(api_schema) -> None:
    def call(case) -> None:
        response = case.call(headers={"Authorization": ""}, timeout=30)
        _check(response)
        admin = case.operation.definition.raw.get("security")
        if admin and not _dot_segment(case) and not _no_route(case, response):
            assert response.status_code == 401, (
                case.method,
                case.path,
                response.status_code,
                response.text[:300],
            )

    assert _fuzz(api_schema, EXAMPLES // 2, call) >= 250
