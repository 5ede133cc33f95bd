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
    ipaddress.ip_network("169.254.0.0/16"),  # link-local, and the metadata service of most clouds
    ipaddress.ip_network("100.100.100.200/32"),  # Alibaba Cloud metadata
    ipaddress.ip_network("0.0.0.0/8"),
    ipaddress.ip_network("224.0.0.0/4"),
    ipaddress.ip_network("255.255.255.255/32"),
    ipaddress.ip_network("fe80::/10"),
    ipaddress.ip_network("fd00:ec2::254/128"),  # AWS metadata over IPv6
    ipaddress.ip_network("fd20:ce::254/128"),  # Google Cloud metadata over IPv6
    ipaddress.ip_network("ff00::/8"),
    ipaddress.ip_network("::/128"),
)

# IPv6 ranges whose last 32 bits are an IPv4 address the packet is translated or tunnelled to.
_LOW32_EMBEDDINGS: tuple[ipaddress.IPv6Network, ...] = (
    ipaddress.IPv6Network("::/96"),  # IPv4-compatible (deprecated; :: and ::1 are not in this form)
    ipaddress.IPv6Network("::ffff:0:0:0/96"),  # IPv4-translated (SIIT)
    ipaddress.IPv6Network("64:ff9b::/96"),  # NAT64 well-known prefix
)
_NOT_COMPATIBLE = (ipaddress.IPv6Address("::"), ipaddress.IPv6Address("::1"))
_NAT64_LOCAL = ipaddress.IPv6Network("64:ff9b:1::/48")
# RFC 6052 layouts a local-use NAT64 prefix may have: (bytes of the IPv4 address, the suffix bytes)
_RFC6052_LAYOUTS = (
    ((6, 7, 9, 10), range(11, 16)),  # /48
    ((7, 9, 10, 11), range(12, 16)),  # /56
    ((9, 10, 11, 12), range(13, 16)),  # /64
)
_ISATAP_IDS = (0x00005EFE, 0x02005EFE)


def embedded_ipv4(ip: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """Every IPv4 address an IPv6 address carries by a standard translation or tunnel, which is
    where a packet to it may end up: mapped, compatible, SIIT, NAT64, 6to4, Teredo and ISATAP."""
    found = [a for a in (ip.ipv4_mapped, ip.sixtofour) if a is not None]
    if ip.teredo:
        found.extend(ip.teredo)
    low32 = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if any(ip in net for net in _LOW32_EMBEDDINGS) and ip not in _NOT_COMPATIBLE:
        found.append(low32)
    if ip in _NAT64_LOCAL:
        found.append(low32)  # the /96 layout
        packed = ip.packed
        for v4_bytes, suffix in _RFC6052_LAYOUTS:
            if packed[8] == 0 and not any(packed[i] for i in suffix):  # u-octet and suffix are zero
                found.append(ipaddress.IPv4Address(bytes(packed[i] for i in v4_bytes)))
    if (int(ip) >> 32) & 0xFFFFFFFF in _ISATAP_IDS:
        found.append(low32)
    return found


class AddressPolicy:
    """``allow`` empty means every address except the always-denied ones.

    An IPv6 address is judged by itself and by every IPv4 address it carries: each must pass, so
    no spelling of a refused IPv4 address in IPv6 gets through, and an allow list must admit both.
    """

    def __init__(self, allow: Iterable[str] = ()) -> None:
        try:
            self.allow: tuple[IPNetwork, ...] = tuple(ipaddress.ip_network(c, strict=False) for c in allow)
        except ValueError as exc:
            raise ConfigError(f"bad --dial-allow CIDR: {exc}") from exc

    def check_ip(self, address: str | IPAddress) -> None:
        ip = ipaddress.ip_address(address) if isinstance(address, str) else address
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
            ip = ip.ipv4_mapped  # the very same destination, reached over IPv4
        targets: list[IPAddress] = [ip]
        if isinstance(ip, ipaddress.IPv6Address):
            targets.extend(embedded_ipv4(ip))
        for target in targets:
            carried = "" if target is ip else f" carries {target}, which"
            for net in ALWAYS_DENIED:
                if target.version == net.version and target in net:
                    raise PolicyError(
                        f"address {ip}{carried} is never dialled (link-local / metadata range {net})"
                    )
            if self.allow and not any(target.version == n.version and target in n for n in self.allow):
                raise PolicyError(
                    f"address {ip}{carried} is outside --dial-allow ({', '.join(map(str, self.allow))})"
                )

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
