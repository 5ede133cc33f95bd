"""Every error leaves the API as {"error": code, "detail": words}, with the contract's status codes."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from f0mesh.api.models import PEER_ID_PATTERN
from f0mesh.errors import F0MeshError, StoreUnavailableError
from f0mesh.log_throttle import LogThrottle

log = logging.getLogger("f0mesh.api")
# a full disk refuses every write: one line per code every few seconds says so, not one per request
_store_log = LogThrottle(log)

_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "too_large",
    415: "unsupported_media_type",
    422: "invalid",
    429: "rate_limited",
    502: "bad_gateway",
    504: "peer_timeout",
}


def error_response(
    status: int, code: str, detail: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse({"error": code, "detail": detail}, status_code=status, headers=headers)


def _message(err: Any) -> str:
    """Pydantic's words, except a PeerId that does not match: a sentence rather than the regex."""
    if (
        err.get("type") == "string_pattern_mismatch"
        and (err.get("ctx") or {}).get("pattern") == PEER_ID_PATTERN
    ):
        return "not a PeerId (40 to 60 base58 characters, as /healthz or GET /api/peers give it)"
    return str(err.get("msg", "invalid"))


def _validation_detail(exc: RequestValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        loc = ".".join(str(p) for p in err.get("loc", ()) if p != "body") or "body"
        parts.append(f"{loc}: {_message(err)}")
    return "; ".join(parts) or "invalid request"


def count_error(app: Any, status: int, code: str) -> None:
    """``f0mesh_http_errors_total``: refusals (401s above all) are what an operator alerts on."""
    metrics = getattr(getattr(app.state, "node", None), "metrics", None)
    if metrics is not None:  # an app without a node (tests of a router alone) has nothing to count
        metrics.http_errors.labels(status=str(status), code=code).inc()


def install(app: FastAPI) -> None:
    @app.exception_handler(F0MeshError)
    async def _f0mesh_error(request: Request, exc: F0MeshError) -> JSONResponse:
        if isinstance(exc, StoreUnavailableError):
            path = request.url.path
            _store_log.warning(exc.code, "%s %s -> %d: %s", request.method, path, exc.status, exc.detail)
        elif exc.status >= 500:
            log.warning(
                "%s %s -> %d %s: %s", request.method, request.url.path, exc.status, exc.code, exc.detail
            )
        count_error(request.app, exc.status, exc.code)
        return error_response(exc.status, exc.code, exc.detail)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        count_error(request.app, 422, "invalid")
        return error_response(422, "invalid", _validation_detail(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        code = _HTTP_CODES.get(exc.status_code, "error")
        count_error(request.app, exc.status_code, code)
        return error_response(exc.status_code, code, detail, exc.headers)
