"""The address guard: which kinds of address the `http` step refuses."""

from __future__ import annotations

from ipaddress import ip_address

import pytest

from worker.steps import address_refusal


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("8.8.8.8", None),
        ("2606:4700::1111", None),
        ("::ffff:8.8.8.8", None),
        ("64:ff9b::808:808", None),
        ("2002:808:808::1", None),
        ("127.0.0.53", "loopback"),
        ("::ffff:10.1.2.3", "private"),
        ("2002:7f00:1::1", "loopback"),
        ("64:ff9b::a00:1", "private"),
        ("100.127.255.254", "carrier-grade NAT"),
        ("172.31.255.255", "private"),
        ("172.32.0.1", None),
        ("fd12:3456::1", "private"),
        ("fec0::1", "private"),
        ("ff02::1", "multicast"),
        ("255.255.255.255", "reserved"),
        ("192.0.2.1", "reserved"),
        ("2001:db8::1", "reserved"),
        ("::7f00:1", "reserved"),
        ("0.1.2.3", "reserved"),
    ],
)
def test_address_refusal(address: str, kind: str | None) -> None:
    assert address_refusal(ip_address(address)) == kind
