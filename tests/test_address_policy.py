"""The address policy: no IPv6 spelling of a refused IPv4 address (link-local, metadata) gets through."""

from __future__ import annotations

import ipaddress
from ipaddress import IPv4Address, IPv6Address

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from f0mesh.address_policy import AddressPolicy, embedded_ipv4
from f0mesh.errors import PolicyError

METADATA = IPv4Address("169.254.169.254")

REFUSED = [
    "169.254.169.254",
    "::ffff:169.254.169.254",  # IPv4-mapped
    "::a9fe:a9fe",  # IPv4-compatible
    "::ffff:0:a9fe:a9fe",  # IPv4-translated (SIIT)
    "64:ff9b::a9fe:a9fe",  # NAT64 well-known prefix
    "64:ff9b:1::a9fe:a9fe",  # NAT64 local-use prefix, /96 layout
    "64:ff9b:1:a9fe:a9:fe00::",  # NAT64 local-use prefix, /48 layout
    "2002:a9fe:a9fe::1",  # 6to4
    "2001:0:a9fe:a9fe::1",  # Teredo server
    "2001:0:4136:e378:8000:63bf:5601:5601",  # Teredo client (obfuscated 169.254.169.254)
    "2001:db8::5efe:a9fe:a9fe",  # ISATAP
    "fe80::1",
    "fe80::a9fe:a9fe%1",
    "fd00:ec2::254",
    "fd20:ce::254",
    "100.100.100.200",
    "0.0.0.0",
    "::",
    "224.0.0.1",
    "ff02::1",
]
ALLOWED = [
    "127.0.0.1",
    "::1",
    "10.1.2.3",
    "2001:db8::1",
    "64:ff9b::808:808",  # NAT64 to a public address stays usable on IPv6-only networks
    "64:ff9b:1::1.2.3.4",
    "2002:808:808::1",
    "::ffff:8.8.8.8",
]


@pytest.mark.parametrize("address", REFUSED)
def test_refused_in_every_form(address: str) -> None:
    assert not AddressPolicy().allows_ip(address)
    with pytest.raises(PolicyError):
        AddressPolicy(["0.0.0.0/0", "::/0"]).check_ip(address)  # whatever --dial-allow says


@pytest.mark.parametrize("address", ALLOWED)
def test_ordinary_addresses_pass(address: str) -> None:
    AddressPolicy().check_ip(address)


async def test_urls_with_embedded_metadata_address_are_refused() -> None:
    policy = AddressPolicy()
    for url in (
        "http://[::a9fe:a9fe]/",
        "http://[64:ff9b::a9fe:a9fe]:80/latest",
        "https://[2002:a9fe:a9fe::]/",
    ):
        with pytest.raises(PolicyError, match=r"169\.254\.169\.254"):
            await policy.check_url(url)
    assert await policy.check_url("http://[::1]:8700/") == "http://[::1]:8700"


def test_allow_list_must_admit_the_carried_ipv4_too() -> None:
    policy = AddressPolicy(["64:ff9b::/96", "10.0.0.0/8"])
    policy.check_ip("64:ff9b::a00:1")  # 10.0.0.1 through NAT64
    with pytest.raises(PolicyError, match=r"8\.8\.8\.8"):
        policy.check_ip("64:ff9b::808:808")
    with pytest.raises(PolicyError):
        policy.check_ip("::ffff:8.8.8.8")


def _embeddings(v4: IPv4Address, data: st.DataObject) -> list[IPv6Address]:
    """Every IPv6 form that carries ``v4``, with the free bits of each form drawn at random."""
    n = int(v4)
    bits = lambda k: data.draw(st.integers(0, (1 << k) - 1))  # noqa: E731
    forms = [
        0xFFFF << 32 | n,  # mapped
        0xFFFF << 48 | n,  # SIIT
        0x64FF9B << 96 | n,  # NAT64 well-known prefix
        0x2002 << 112 | n << 80 | bits(80),  # 6to4: any subnet and host
        0x20010000 << 96 | n << 64 | bits(64),  # Teredo: as the server
        0x20010000 << 96 | bits(32) << 64 | bits(32) << 32 | (n ^ 0xFFFFFFFF),  # Teredo: as the client
        bits(64) << 64 | data.draw(st.sampled_from([0x00005EFE, 0x02005EFE])) << 32 | n,  # ISATAP
    ]
    local = 0x64FF9B0001 << 80
    forms.append(local | bits(48) << 32 | n)  # NAT64 local-use, /96
    b = n.to_bytes(4, "big")
    forms.append(local | int.from_bytes(b[:2] + b"\0" + b[2:] + bytes(5), "big"))  # /48
    forms.append(local | bits(8) << 72 | int.from_bytes(b[:1] + b"\0" + b[1:] + bytes(4), "big"))  # /56
    forms.append(local | bits(16) << 64 | int.from_bytes(b"\0" + b + bytes(3), "big"))  # /64
    if n > 1:  # ::0.0.0.0 and ::0.0.0.1 are the unspecified and loopback addresses, not this form
        forms.append(n)  # compatible
    return [IPv6Address(f) for f in forms]


IPV4 = st.one_of(
    st.ip_addresses(network="169.254.0.0/16"),
    st.ip_addresses(network="0.0.0.0/8"),
    st.ip_addresses(network="224.0.0.0/4"),
    st.ip_addresses(v=4),
)
ALLOW_LISTS = st.lists(
    st.builds(
        lambda a, p: str(ipaddress.ip_network(f"{a}/{p}", strict=False)),
        st.ip_addresses(v=4),
        st.integers(0, 32),
    ),
    max_size=3,
)


@settings(max_examples=300, deadline=None)
@given(v4=IPV4, allow=ALLOW_LISTS, data=st.data())
def test_every_ipv6_form_of_a_refused_ipv4_address_is_refused(
    v4: IPv4Address, allow: list[str], data: st.DataObject
) -> None:
    policy = AddressPolicy(allow)
    for v6 in _embeddings(v4, data):
        assert policy.allows_ip(v6.compressed) <= policy.allows_ip(str(v4)), (str(v4), v6.compressed, allow)


@settings(max_examples=200, deadline=None)
@given(v4=st.ip_addresses(v=4), data=st.data())
def test_the_forms_decode_to_the_address_they_carry(v4: IPv4Address, data: st.DataObject) -> None:
    for v6 in _embeddings(v4, data):
        assert v4 in embedded_ipv4(v6), (str(v4), v6.compressed)
