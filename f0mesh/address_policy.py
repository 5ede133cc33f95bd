"""Which addresses this node may send requests to or accept as ICE candidates.

A node is told URLs by strangers (``/dial``, ``/api/peers``, offers carrying a public URL), so it
must not become a way to reach the machine's own private services or a cloud metadata endpoint.
Metadata addresses are refused whatever ``--dial-allow`` says.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterable
from urllib.parse import urlsplit

from f0mesh.errors import ConfigError, PolicyError

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

ALWAYS_DENIED: tuple[IPNetwork, ...] = (
    ipaddress.ip_network("169.254.0.0/16"),
    ipaddress.ip_network("fe80::/10"),
    ipaddress.ip_network("fd00:ec2::254/128"),
    ipaddress.ip_network("0.0.0.0/8"),
    ipaddress.ip_network("::/128"),
)


class AddressPolicy:
    """``allow`` empty means every address except the always-denied ones."""

    def __init__(self, allow: Iterable[str] = ()) -> None:
        try:
            self.allow: tuple[IPNetwork, ...] = tuple(ipaddress.ip_network(c, strict=False) for c in allow)
        except ValueError as exc:
            raise ConfigError(f"bad --dial-allow CIDR: {exc}") from exc

    def check_ip(self, address: str | IPAddress) -> None:
        ip = ipaddress.ip_address(address) if isinstance(address, str) else address
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
            ip = ip.ipv4_mapped
        for net in ALWAYS_DENIED:
            if ip.version == net.version and ip in net:
                raise PolicyError(f"address {ip} is never dialled (link-local / metadata range {net})")
        if self.allow and not any(ip.version == n.version and ip in n for n in self.allow):
            raise PolicyError(f"address {ip} is outside --dial-allow ({', '.join(map(str, self.allow))})")

    def allows_ip(self, address: str) -> bool:
        try:
            self.check_ip(address)
        except (PolicyError, ValueError):
            return False
        return True

    async def check_url(self, url: str) -> str:
        """Validate an http(s) URL and every address its host resolves to; returns the URL normalised."""
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https"):
            raise PolicyError(f"only http and https URLs are dialled, not {parts.scheme or 'no scheme'!r}")
        if not parts.hostname:
            raise PolicyError(f"URL {url!r} has no host")
        if parts.username or parts.password:
            raise PolicyError("URLs with credentials are refused")
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError as exc:
            raise PolicyError(f"URL {url!r} has a bad port") from exc
        try:
            infos = await asyncio.wait_for(
                asyncio.get_running_loop().getaddrinfo(parts.hostname, port, type=socket.SOCK_STREAM), 5
            )
        except (OSError, TimeoutError) as exc:
            raise PolicyError(f"cannot resolve {parts.hostname!r}") from exc
        for info in infos:
            self.check_ip(info[4][0])
        return f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}"
