"""The address guard: the kinds of address an `http` step may not reach.

Invariant: an address is public only if it is none of loopback, link-local, private,
unspecified, multicast, reserved or carrier-grade NAT; an IPv6 address that carries an IPv4
one (IPv4-mapped, 6to4, NAT64) is judged by the IPv4 address, so it cannot smuggle a private
target past the guard.
"""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network

IPAddress = IPv4Address | IPv6Address

_SHARED = IPv4Network("100.64.0.0/10")
_NAT64 = IPv6Network("64:ff9b::/96")
_PRIVATE = (
    IPv4Network("10.0.0.0/8"),
    IPv4Network("172.16.0.0/12"),
    IPv4Network("192.168.0.0/16"),
    IPv6Network("fc00::/7"),
)


def address_refusal(address: IPAddress) -> str | None:
    """Why a step may not reach `address` without SLUICE_HTTP_ALLOW_PRIVATE (the kind of address
    it is); None if it is public."""
    if isinstance(address, IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is None and address in _NAT64:
            embedded = IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is not None:
            return address_refusal(embedded)
    if address.is_loopback:
        return "loopback"
    if address.is_link_local:
        return "link-local"
    if address.is_unspecified:
        return "unspecified"
    if address.is_multicast:
        return "multicast"
    if address in _SHARED:
        return "carrier-grade NAT"
    if any(address in network for network in _PRIVATE) or (
        isinstance(address, IPv6Address) and address.is_site_local
    ):
        return "private"
    if address.is_reserved or not address.is_global:
        return "reserved"
    return None
