"""The async client of a running node's HTTP API, for the CLI, scripts and applications.

One method per endpoint; every failure is a ``ClientError`` whose ``detail`` is one sentence an
operator can act on (the node's own ``{"error", "detail"}`` when it answered, else why it could not
be reached), so callers never see an httpx exception or a traceback. Payloads are JSON values or
``bytes`` (sent as ``payload_b64`` and given back as bytes). ``subscribe`` is an async iterator
that resumes after a dropped connection (Last-Event-ID) and pages in what a slow reader was told
it missed, so it yields every stored message of its topic once, in order.

    async with NodeClient("http://127.0.0.1:8700", token) as node:
        await node.publish("news", {"headline": "hello"})
        async for message in node.subscribe("news", since=0):
            print(message["n"], message["payload"])
"""

from __future__ import annotations

import asyncio
import base64
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import httpx

from f0mesh.errors import F0MeshError
from f0mesh.sse_reader import GIVE_UP_S, EventParser, ServerEvent

TIMEOUT_S = 30.0
DETAIL_MAX_CHARS = 300
RECONNECT_S = 1.0


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


class NotFound(ApiError):
    code = "not_found"
    status = 404


class RateLimited(ApiError):
    """The node is busy or this client holds too many streams: retry later."""

    code = "rate_limited"
    status = 429


_BY_STATUS: dict[int, type[ApiError]] = {404: NotFound, 429: RateLimited}


def _payload(value: Any) -> dict[str, Any]:
    if isinstance(value, bytes | bytearray):
        return {"payload_b64": base64.b64encode(value).decode("ascii")}
    return {"payload": value}


def _decoded(message: dict[str, Any]) -> dict[str, Any]:
    """A message or event as received, with a ``payload_b64`` turned back into ``payload`` bytes."""
    if "payload_b64" in message:
        message = {**message, "payload": base64.b64decode(message.pop("payload_b64"))}
    return message


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
        kind = _BY_STATUS.get(response.status_code, ApiError)
        raise kind(detail, code=code, status=response.status_code)

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
        """Sign and spread ``payload`` (a JSON value or bytes); the message id."""
        return (await self._call("POST", "/api/gossip", json={"topic": topic, **_payload(payload)}))["id"]

    async def messages(
        self, topic: str | None = None, limit: int = 100, since: int | None = None
    ) -> list[dict[str, Any]]:
        """Stored messages, newest first; with ``since``, those stored after that id, oldest first."""
        params: dict[str, Any] = {"limit": limit}
        if topic:
            params["topic"] = topic
        if since is not None:
            params["since"] = since
        rows = (await self._call("GET", "/api/gossip/messages", params=params))["messages"]
        return [_decoded(row) for row in rows]

    async def subscribe(self, topic: str, since: int | None = None) -> AsyncIterator[dict[str, Any]]:
        """Every message of ``topic`` stored from now on (after id ``since`` if given), in order.

        After a dropped connection it resumes from the last id seen; when the node says this reader
        fell behind, the missed range is paged in first. Gives up (NodeUnreachable) only after
        GIVE_UP_S without reaching the node."""
        last: int | None = since
        failing_since: float | None = None
        loop = asyncio.get_running_loop()
        while True:
            headers = {"Last-Event-ID": str(last)} if last is not None else {}
            try:
                async with self._http.stream(
                    "GET",
                    "/api/gossip/subscribe",
                    params={"topic": topic},
                    headers=headers,
                    timeout=httpx.Timeout(10.0, read=60.0),
                ) as response:
                    if response.status_code >= 400:
                        await response.aread()
                        await self._raise_for(response)
                    failing_since = None
                    async for item in _events(response):
                        if item.id is not None:
                            last = int(item.id)
                        if item.event == "message":
                            yield _decoded(item.data)
                        elif item.event == "dropped":
                            async for message in self._page(topic, item.data["after"], item.data["upto"]):
                                yield message
                            last = item.data["upto"]
            except httpx.HTTPError as exc:
                failing_since = failing_since or loop.time()
                if loop.time() - failing_since > GIVE_UP_S:
                    raise NodeUnreachable(f"lost the node at {self.base_url}: {_why(exc)}") from exc
            await asyncio.sleep(RECONNECT_S)

    async def _page(self, topic: str, after: int, upto: int) -> AsyncIterator[dict[str, Any]]:
        while after < upto:
            rows = await self.messages(topic, limit=500, since=after)
            if not rows:
                return
            for row in rows:
                if row["n"] <= upto:
                    yield row
            after = rows[-1]["n"]

    async def _raise_for(self, response: httpx.Response) -> None:
        try:
            body = response.json()
        except ValueError:
            body = {}
        code = str(body.get("error", "error")) if isinstance(body, dict) else "error"
        detail = f"{code}: {str(body.get('detail', '') if isinstance(body, dict) else '')[:DETAIL_MAX_CHARS]}"
        if response.status_code == 401:
            raise Unauthorized(detail, code=code)
        raise _BY_STATUS.get(response.status_code, ApiError)(detail, code=code, status=response.status_code)

    async def documents(self) -> dict[str, Any]:
        return await self._call("GET", "/api/state")

    async def document(self, name: str) -> dict[str, Any]:
        return await self._call("GET", f"/api/state/{quote(name, safe='')}")

    async def put_document(self, name: str, kind: str, value: Any) -> dict[str, Any]:
        """Replace a replicated document's content (``kind``: map, set or list)."""
        body = {"kind": kind, "value": value}
        return await self._call("PUT", f"/api/state/{quote(name, safe='')}", json=body)

    async def patch_document(self, name: str, patch: dict[str, Any]) -> dict[str, Any]:
        """A change, e.g. ``{"kind": "map", "set": {"k": 1}, "delete": []}``."""
        return await self._call("POST", f"/api/state/{quote(name, safe='')}", json=patch)

    async def send_direct(self, peer_id: str, payload: Any) -> str:
        """One message to one peer, sealed to its key; the message id."""
        return (await self._call("POST", "/api/direct", json={"peer_id": peer_id, **_payload(payload)}))["id"]

    async def query(
        self,
        name: str,
        payload: Any = None,
        *,
        peers: list[str] | None = None,
        tags: dict[str, str] | None = None,
        timeout: float = 5.0,
    ) -> dict[str, Any]:
        """Ask the peers matching the filter; their answers, acks, errors and who did not answer."""
        body = {
            "name": name,
            **_payload(payload),
            "filter": {"peers": peers, "tags": tags},
            "timeout": timeout,
        }
        return await self._call("POST", "/api/query", json=body, timeout=timeout + TIMEOUT_S)

    async def trust(self) -> dict[str, Any]:
        return await self._call("GET", "/api/trust")

    async def set_trust(self, peer_id: str, weight: float) -> dict[str, Any]:
        return await self._call("PUT", f"/api/trust/{quote(peer_id, safe='')}", json={"weight": weight})


async def _events(response: httpx.Response) -> AsyncIterator[ServerEvent]:
    parser = EventParser()
    async for line in response.aiter_lines():
        try:
            item = parser.feed(line)
        except F0MeshError as exc:
            raise NodeUnreachable(exc.detail, code=exc.code) from exc
        if item is not None:
            yield item
