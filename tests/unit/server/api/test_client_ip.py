from __future__ import annotations

import ipaddress

import pytest

from vaultgate.server.api.deps import bearer, client_ip

PROXY = (ipaddress.ip_network("10.0.0.0/8"),)


@pytest.mark.parametrize(
    ("peer", "forwarded", "trusted", "expected"),
    [
        (("203.0.113.9", 1), None, PROXY, "203.0.113.9"),
        # A forwarded header from an untrusted peer is ignored: anyone could send one.
        (("203.0.113.9", 1), "1.2.3.4", PROXY, "203.0.113.9"),
        (("203.0.113.9", 1), "1.2.3.4", (), "203.0.113.9"),
        # From a trusted proxy: the right-most address that is not itself a trusted proxy.
        (("10.0.0.5", 1), "198.51.100.7", PROXY, "198.51.100.7"),
        (("10.0.0.5", 1), "6.6.6.6, 198.51.100.7, 10.0.0.4", PROXY, "198.51.100.7"),
        # Garbage in the chain: fall back to the peer rather than believe any of it.
        (("10.0.0.5", 1), "not-an-ip", PROXY, "10.0.0.5"),
        (("10.0.0.5", 1), "10.0.0.4", PROXY, "10.0.0.5"),
        (None, "1.2.3.4", PROXY, None),
    ],
)
def test_client_ip(
    peer: tuple[str, int] | None,
    forwarded: str | None,
    trusted: tuple[ipaddress.IPv4Network, ...],
    expected: str | None,
) -> None:
    assert client_ip(peer, forwarded, trusted) == expected


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("Bearer abc", "abc"),
        ("bearer  abc ", "abc"),
        ("Basic abc", None),
        (None, None),
        ("", None),
    ],
)
def test_bearer(header: str | None, expected: str | None) -> None:
    assert bearer(header) == expected
