"""Errors shared by every layer; each carries a stable code the HTTP API maps to a status."""


class F0MeshError(Exception):
    """Base error with a machine-readable code and a human-readable detail."""

    code = "error"
    status = 400

    def __init__(self, detail: str, *, code: str | None = None, status: int | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status


class IdentityError(F0MeshError):
    code = "identity"


class ConfigError(F0MeshError):
    code = "config"


class SignatureError(F0MeshError):
    code = "bad_signature"
    status = 403


class PolicyError(F0MeshError):
    code = "forbidden"
    status = 403


class NotFoundError(F0MeshError):
    code = "not_found"
    status = 404


class ConflictError(F0MeshError):
    code = "conflict"
    status = 409


class RateLimitedError(F0MeshError):
    code = "rate_limited"
    status = 429


class PeerError(F0MeshError):
    """The other peer answered badly or could not be reached (502), or not in time (504)."""

    code = "bad_gateway"
    status = 502


class PeerTimeoutError(PeerError):
    code = "peer_timeout"
    status = 504


class PeerUnreachableError(PeerError):
    """A refused connection or an unknown host is known at once: waiting longer would not help."""

    code = "peer_unreachable"
    status = 502


class MessageTooLargeError(F0MeshError):
    code = "too_large"
    status = 413


class StoreUnavailableError(F0MeshError):
    """The store did not take a write (I/O error, lost connection, no answer in time): nothing was
    acknowledged, and the same write may be tried again later."""

    code = "store_unavailable"
    status = 503


class StorageFullError(StoreUnavailableError):
    """The store's disk is full: the write was not stored. Freeing space is enough, no restart needed."""

    code = "storage_full"
    status = 507
