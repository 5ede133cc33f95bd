"""A small synchronous client of a running node, for the CLI."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from f0mesh.errors import F0MeshError


def resolve_token(admin_token: str | None, data_dir: Path | None) -> str | None:
    if admin_token:
        return admin_token
    if data_dir is not None:
        path = Path(data_dir) / "admin.token"
        if path.exists():
            return path.read_text().strip()
    return None


class NodeClient:
    def __init__(self, base_url: str, token: str | None = None, timeout: float = 30.0) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.Client(base_url=base_url.rstrip("/"), headers=headers, timeout=timeout)
        self.base_url = base_url

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise F0MeshError(f"cannot reach the node at {self.base_url}: {type(exc).__name__}") from exc
        try:
            body = response.json()
        except ValueError:
            body = {"error": "bad_response", "detail": response.text[:200]}
        if response.status_code >= 400:
            raise F0MeshError(
                f"{body.get('error', 'error')}: {body.get('detail', '')}", status=response.status_code
            )
        return body

    def close(self) -> None:
        self._http.close()
