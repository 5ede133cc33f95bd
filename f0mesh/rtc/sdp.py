"""SDP validation before aiortc sees it.

aiortc accepts an offer with no ``m=`` line and answers it with an empty SDP, raises a bare
AssertionError on a bad candidate line, and accepts an SDP without fingerprints and then stays
``connecting`` forever. Every offer and answer therefore passes through ``validate_sdp`` first.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from aioice import Candidate

from f0mesh.errors import F0MeshError

MAX_SDP_BYTES = 64 * 1024
_FINGERPRINT = re.compile(r"^a=fingerprint:(sha-256|sha-384|sha-512) ((?:[0-9A-Fa-f]{2}:)+[0-9A-Fa-f]{2})$")


class SdpError(F0MeshError):
    code = "bad_sdp"
    status = 400


@dataclass(frozen=True)
class SdpSummary:
    fingerprints: tuple[tuple[str, str], ...]
    candidates: tuple[Candidate, ...]
    ice_ufrag: str


def validate_sdp(sdp: object, *, allow_ip=None, require_candidates: bool = True) -> SdpSummary:
    """Check an SDP for a data-channel-only session; ``allow_ip(addr) -> bool`` filters candidates.

    ``require_candidates=False`` is for offers: a browser hides its host addresses behind mDNS
    names (which f0peer.js leaves out), and the answerer learns such an offerer peer-reflexively
    from the connectivity checks it sends to the answer's candidates.
    """
    if not isinstance(sdp, str) or not sdp.strip():
        raise SdpError("SDP is empty")
    if len(sdp.encode("utf-8", "replace")) > MAX_SDP_BYTES:
        raise SdpError(f"SDP is larger than {MAX_SDP_BYTES} bytes")
    lines = [line.rstrip("\r") for line in sdp.split("\n") if line.strip()]
    if not lines or lines[0] != "v=0":
        raise SdpError("SDP must start with v=0")
    media = [line for line in lines if line.startswith("m=")]
    if not media:
        raise SdpError("SDP has no m= line (no data channel offered)")
    for m in media:
        parts = m[2:].split()
        if len(parts) < 3 or parts[0] != "application" or "DTLS/SCTP" not in parts[2]:
            raise SdpError(
                f"only data-channel media (m=application ... DTLS/SCTP) is accepted, got {m[:60]!r}"
            )
    fingerprints: list[tuple[str, str]] = []
    candidates: list[Candidate] = []
    ufrag = pwd = None
    for line in lines:
        if line.startswith("a=fingerprint:"):
            match = _FINGERPRINT.match(line)
            if not match:
                raise SdpError(f"malformed fingerprint line {line[:80]!r}")
            fingerprints.append((match.group(1), match.group(2).upper()))
        elif line.startswith("a=ice-ufrag:"):
            ufrag = line.split(":", 1)[1]
        elif line.startswith("a=ice-pwd:"):
            pwd = line.split(":", 1)[1]
        elif line.startswith("a=candidate:"):
            candidates.append(_parse_candidate(line[2:], allow_ip))
    if not fingerprints:
        raise SdpError("SDP has no DTLS fingerprint (a=fingerprint)")
    if not ufrag or not pwd:
        raise SdpError("SDP lacks ICE credentials (a=ice-ufrag / a=ice-pwd)")
    if not candidates and require_candidates:
        raise SdpError("SDP carries no usable ICE candidate (is the other host loopback-only?)")
    return SdpSummary(tuple(fingerprints), tuple(candidates), ufrag)


def _parse_candidate(value: str, allow_ip) -> Candidate:
    try:
        candidate = Candidate.from_sdp(value)
        ip = ipaddress.ip_address(candidate.host)
    except (AssertionError, ValueError, IndexError, KeyError) as exc:
        raise SdpError(f"malformed ICE candidate {value[:80]!r}") from exc
    if not (0 < candidate.port < 65536):
        raise SdpError(f"ICE candidate port {candidate.port} is invalid")
    if allow_ip is not None and not allow_ip(str(ip)):
        raise SdpError(
            f"ICE candidate address {ip} is not allowed by --dial-allow", status=403, code="forbidden"
        )
    return candidate


def count_candidates(sdp: str) -> int:
    return sum(1 for line in sdp.splitlines() if line.startswith("a=candidate:"))
