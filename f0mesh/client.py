"""A small async client of a running node's HTTP API, for the CLI and scripts.

One method per endpoint used; every failure is a ``ClientError`` whose ``detail`` is one sentence
an operator can act on (the node's own ``{"error", "detail"}`` when it answered, else why it could
not be reached), so callers never see an httpx exception or a traceback.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import httpx

from f0mesh.errors import F0MeshError

TIMEOUT_S = 30.0
DETAIL_MAX_CHARS = 300


class ClientError(F0MeshError):
    """The request did not succeed; ``status`` is the node's HTTP status, 0 when it never answered."""

    code = "client"
    status = 0


class BadNodeUrl(ClientError):
    code = "bad_url"


class NodeUnreachable(ClientError):
    code = "unreachable"


class NodeTimeout(ClientError):
    code = "timeout"


class ApiError(ClientError):
    """The node answered with an error; ``code`` is its error code (``unauthorized``, ``not_found``…)."""


class Unauthorized(ApiError):
    code = "unauthorized"
    status = 401


def node_url(value: str) -> str:
    """``--node``: a bare ``host:port`` means ``http://host:port``; other schemes are refused."""
    url = value.strip().rstrip("/")
    if "://" not in url:
        url = f"http://{url}"
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise BadNodeUrl(f"--node {value}: give the node's URL, e.g. http://127.0.0.1:8700")
    try:
        _ = parts.port
    except ValueError as exc:
        raise BadNodeUrl(f"--node {value}: bad port ({exc})") from exc
    return url


def resolve_token(admin_token: str | None, data_dir: Path | None) -> str | None:
    """``--admin-token`` (or ``F0MESH_ADMIN_TOKEN``), else ``DATA_DIR/admin.token`` if readable."""
    if admin_token:
        return admin_token
    if data_dir is not None:
        path = Path(data_dir) / "admin.token"
        try:
            return path.read_text().strip() or None
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise ClientError(f"cannot read the admin token from {path}: {exc.strerror}") from exc
    return None


def _why(exc: httpx.HTTPError) -> str:
    cause: BaseException | None = exc
    for _ in range(8):  # httpx -> httpcore -> OSError
        if cause is None:
            break
        if isinstance(cause, OSError) and cause.errno:
            return os.strerror(cause.errno)
        cause = cause.__cause__ or cause.__context__
    return str(exc) or type(exc).__name__


class NodeClient:
    def __init__(self, base_url: str, token: str | None = None, timeout: float = TIMEOUT_S) -> None:
        self.base_url = node_url(base_url)
        self.has_token = bool(token)
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.AsyncClient(base_url=self.base_url, headers=headers, timeout=timeout)

    async def __aenter__(self) -> NodeClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = await self._http.request(method, path, **kwargs)
        except httpx.TimeoutException as exc:
            raise NodeTimeout(f"the node at {self.base_url} did not answer in time") from exc
        except httpx.HTTPError as exc:
            raise NodeUnreachable(
                f"cannot reach the node at {self.base_url}: {_why(exc)} (is `f0mesh up` running there?)"
            ) from exc
        try:
            body = response.json()
        except ValueError:
            body = None
        if response.status_code < 400 and body is not None:
            return body
        if not isinstance(body, dict):
            raise ApiError(
                f"{self.base_url} answered HTTP {response.status_code} without an f0mesh error body "
                "(is that an f0mesh node?)",
                code="bad_response",
                status=response.status_code,
            )
        code = str(body.get("error", "error"))
        detail = f"{code}: {str(body.get('detail', ''))[:DETAIL_MAX_CHARS]}"
        if response.status_code == 401:
            hint = "" if self.has_token else " (give --admin-token, F0MESH_ADMIN_TOKEN or --data-dir)"
            raise Unauthorized(detail + hint, code=code)
        raise ApiError(detail, code=code, status=response.status_code)

    # -- one method per endpoint ------------------------------------------------------------

    async def health(self) -> dict[str, Any]:
        return await self._call("GET", "/healthz")

    async def peers(self, limit: int = 1000) -> list[dict[str, Any]]:
        return (await self._call("GET", "/api/peers", params={"limit": limit}))["peers"]

    async def add_peer(self, url: str) -> dict[str, Any]:
        return await self._call("POST", "/api/peers", json={"url": url})

    async def block(self, peer_id: str) -> dict[str, Any]:
        return await self._call("POST", f"/api/peers/{quote(peer_id, safe='')}/block")

    async def unblock(self, peer_id: str) -> dict[str, Any]:
        return await self._call("DELETE", f"/api/peers/{quote(peer_id, safe='')}/block")

    async def dial(self, *, url: str | None = None, peer_id: str | None = None) -> dict[str, Any]:
        return await self._call("POST", "/dial", json={"url": url} if url else {"peer_id": peer_id})

    async def links(self) -> list[dict[str, Any]]:
        return (await self._call("GET", "/api/mesh-rtc/links"))["links"]

    async def close_link(self, peer_id: str) -> dict[str, Any]:
        return await self._call("DELETE", f"/api/mesh-rtc/links/{quote(peer_id, safe='')}")

    async def publish(self, topic: str, payload: Any) -> str:
        return (await self._call("POST", "/api/gossip", json={"topic": topic, "payload": payload}))["id"]

    async def messages(self, topic: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        params: dict[str, Any] = {"limit": limit}
        if topic:
            params["topic"] = topic
        return (await self._call("GET", "/api/gossip/messages", params=params))["messages"]

    async def documents(self) -> dict[str, Any]:
        return await self._call("GET", "/api/state")

    async def document(self, name: str) -> dict[str, Any]:
        return await self._call("GET", f"/api/state/{quote(name, safe='')}")

    async def trust(self) -> dict[str, Any]:
        return await self._call("GET", "/api/trust")

    async def set_trust(self, peer_id: str, weight: float) -> dict[str, Any]:
        return await self._call("PUT", f"/api/trust/{quote(peer_id, safe='')}", json={"weight": weight})
