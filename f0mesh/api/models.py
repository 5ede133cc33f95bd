"""Request bodies, validated by pydantic: unknown fields refused, sizes bounded."""

from __future__ import annotations

import base64
import binascii

from pydantic import BaseModel, ConfigDict, Field, model_validator

URL_MAX = 2048
PEER_ID_PATTERN = r"^[1-9A-HJ-NP-Za-km-z]{40,60}$"


def decode_b64(text: str) -> bytes:
    """A request's ``payload_b64``: strict base64, or ValueError in words (a 422 from pydantic)."""
    try:
        return base64.b64decode(text, validate=True)
    except binascii.Error as exc:
        raise ValueError(f"payload_b64 is not base64: {exc}") from exc


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PeerAdd(Strict):
    url: str = Field(min_length=1, max_length=URL_MAX, description="Base URL of the peer's worker")


class DialRequest(Strict):
    url: str | None = Field(default=None, min_length=1, max_length=URL_MAX)
    peer_id: str | None = Field(default=None, pattern=PEER_ID_PATTERN)

    @model_validator(mode="after")
    def exactly_one(self) -> DialRequest:
        if (self.url is None) == (self.peer_id is None):
            raise ValueError("give exactly one of 'url' or 'peer_id'")
        return self


class MeshDialRequest(Strict):
    to: str | None = Field(default=None, pattern=PEER_ID_PATTERN, description="PeerId to link to")
    peer_id: str | None = Field(default=None, pattern=PEER_ID_PATTERN, description="the same as 'to'")

    @model_validator(mode="after")
    def exactly_one(self) -> MeshDialRequest:
        if (self.to is None) == (self.peer_id is None):
            raise ValueError("give exactly one of 'to' or 'peer_id'")
        return self

    @property
    def target(self) -> str:
        return self.to or self.peer_id or ""


class SignedDescriptionBody(BaseModel):
    """A signed offer or answer; checked field by field by the signaling layer."""

    model_config = ConfigDict(extra="allow")
