"""HTTP client for other peers' workers: every request passes the address policy and has a timeout."""

from __future__ import annotations

from typing import Any

import httpx

from f0mesh.address_policy import AddressPolicy
from f0mesh.errors import ConflictError, PeerError, PeerTimeoutError

REQUEST_TIMEOUT_S = 10.0


class GlareLost(ConflictError):
    """The other peer refused our offer because its own offer to us wins."""

    code = "glare"


class SignalingClient:
    def __init__(
        self, policy: AddressPolicy, *, timeout: float = REQUEST_TIMEOUT_S, verify: Any = True
    ) -> None:
        self.policy = policy
        self.timeout = timeout
        self._client = httpx.AsyncClient(timeout=timeout, follow_redirects=False, verify=verify)

    async def close(self) -> None:
        await self._client.aclose()

    async def request(self, method: str, url: str, payload: Any = None) -> Any:
        """JSON request to another node; 504 when it does not answer, 502 when it answers badly."""
        await self.policy.check_url(url)
        try:
            response = await self._client.request(method, url, json=payload)
        except httpx.TimeoutException as exc:
            raise PeerTimeoutError(f"{url} did not answer within {self.timeout:.0f} s") from exc
        except httpx.HTTPError as exc:
            raise PeerTimeoutError(f"{url} is unreachable: {type(exc).__name__}") from exc
        try:
            body = response.json()
        except ValueError as exc:
            raise PeerError(
                f"{url} answered HTTP {response.status_code} with a body that is not JSON"
            ) from exc
        if response.status_code == 409 and isinstance(body, dict) and body.get("error") == "glare":
            raise GlareLost(str(body.get("detail", "glare")))
        if response.status_code >= 400:
            detail = body.get("detail") if isinstance(body, dict) else None
            raise PeerError(f"{url} refused: HTTP {response.status_code}: {str(detail)[:300]}")
        return body

    async def healthz(self, base_url: str) -> dict[str, Any]:
        body = await self.request("GET", f"{base_url.rstrip('/')}/healthz")
        if not isinstance(body, dict) or not isinstance(body.get("peer_id"), str):
            raise PeerError(f"{base_url}/healthz did not return a peer_id")
        return body

    async def post_offer(
        self, worker_url: str, offer: dict[str, Any], *, path: str = "/offer"
    ) -> dict[str, Any]:
        body = await self.request("POST", f"{worker_url.rstrip('/')}{path}", offer)
        if not isinstance(body, dict):
            raise PeerError(f"{worker_url} answered an offer with something that is not an answer")
        return body

    async def post_answer(self, worker_url: str, answer: dict[str, Any], *, path: str = "/answer") -> None:
        await self.request("POST", f"{worker_url.rstrip('/')}{path}", answer)
