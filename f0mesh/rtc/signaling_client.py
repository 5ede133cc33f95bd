"""HTTP client for other peers' workers: every request passes the address policy and has a timeout.

HTTPS peers are verified against the system's CA store (OpenSSL's default paths, which honour
``SSL_CERT_FILE``), or against ``--tls-ca`` alone, so a private mesh trusts only its own CA.
"""

from __future__ import annotations

import os
import ssl
from pathlib import Path
from typing import Any

import httpx

from f0mesh.address_policy import AddressPolicy
from f0mesh.errors import ConflictError, PeerError, PeerTimeoutError, PeerUnreachableError

REQUEST_TIMEOUT_S = 10.0


def outbound_tls_context(ca_file: Path | None = None) -> ssl.SSLContext:
    """The context that verifies peers: the system store, not certifi's bundle as httpx would use,
    so operators manage trust the way they do for every other service on the machine."""
    if ca_file:  # read now: a bad --tls-ca stops the node at start-up
        return ssl.create_default_context(cafile=str(ca_file))
    return SystemStoreContext(ssl.PROTOCOL_TLS_CLIENT)  # verifies, and checks host names, by default


class SystemStoreContext(ssl.SSLContext):
    """``ssl.create_default_context()`` that reads the system store on its first TLS connection:
    its ~150 certificates hold ~1.7 MB that a node dialling only http:// peers never needs
    (issue #25). Connections are made on the event loop's thread, one at a time."""

    _loaded = False

    def _load(self) -> None:
        if not self._loaded:
            self.load_default_certs(ssl.Purpose.SERVER_AUTH)
            self._loaded = True

    def wrap_bio(self, *args: Any, **kwargs: Any) -> ssl.SSLObject:
        self._load()
        return super().wrap_bio(*args, **kwargs)

    def wrap_socket(self, *args: Any, **kwargs: Any) -> ssl.SSLSocket:
        self._load()
        return super().wrap_socket(*args, **kwargs)


def _tls_failure(exc: BaseException) -> ssl.SSLError | None:
    """The TLS error under an httpx error, if any: a bad certificate is not an unreachable peer."""
    seen: set[int] = set()
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen:
        if isinstance(cause, ssl.SSLError):
            return cause
        seen.add(id(cause))
        cause = cause.__cause__ or cause.__context__
    return None


def _connect_failure(exc: BaseException) -> str:
    """The OS's words for a failed connection ("Connection refused"), not httpx's class name."""
    cause: BaseException | None = exc
    for _ in range(8):  # the OSError sits a few causes down (httpx -> httpcore -> anyio -> OSError)
        if cause is None:
            break
        if isinstance(cause, OSError) and cause.errno:
            return os.strerror(cause.errno)
        cause = cause.__cause__ or cause.__context__
    return str(exc) or type(exc).__name__


class GlareLost(ConflictError):
    """The other peer refused our offer because its own offer to us wins."""

    code = "glare"


class SignalingClient:
    def __init__(
        self, policy: AddressPolicy, *, timeout: float = REQUEST_TIMEOUT_S, verify: Any = None
    ) -> None:
        self.policy = policy
        self.timeout = timeout
        if verify is None or verify is True:
            verify = outbound_tls_context()
        self._client = httpx.AsyncClient(timeout=timeout, follow_redirects=False, verify=verify)

    async def close(self) -> None:
        await self._client.aclose()

    async def request(self, method: str, url: str, payload: Any = None) -> Any:
        """JSON request to another node; 504 when it does not answer in time, 502 when it refuses the
        connection or answers badly."""
        await self.policy.check_url(url)
        try:
            response = await self._client.request(method, url, json=payload)
        except httpx.TimeoutException as exc:
            raise PeerTimeoutError(f"{url} did not answer within {self.timeout:.0f} s") from exc
        except httpx.HTTPError as exc:
            tls = _tls_failure(exc)
            if isinstance(tls, ssl.SSLCertVerificationError):
                raise PeerError(
                    f"TLS with {url} failed: certificate verify failed: {tls.verify_message} "
                    "(is the peer's CA in --tls-ca, or in the system store without --tls-ca?)",
                    code="tls",
                ) from exc
            if tls is not None:
                raise PeerError(f"TLS with {url} failed: {tls.reason or tls}", code="tls") from exc
            raise PeerUnreachableError(f"{url} is unreachable: {_connect_failure(exc)}") from exc
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
