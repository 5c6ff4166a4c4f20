from __future__ import annotations

import ipaddress
import socket
from collections.abc import Sequence

import pytest
from aiohttp.abc import AbstractResolver, ResolveResult

from vaultgate.server.egress import (
    AddressGuard,
    Resolve,
    VettingResolver,
    parse_target,
    system_resolve,
)
from vaultgate.server.errors import BadGateway, Unprocessable

BLOCKED = [
    "127.0.0.1",
    "127.255.255.254",
    "0.0.0.0",
    "0.1.2.3",
    "10.0.0.1",
    "172.16.0.1",
    "172.31.255.255",
    "192.168.1.1",
    "169.254.169.254",  # cloud metadata
    "169.254.0.1",
    "100.64.0.1",  # CGNAT
    "100.127.255.255",
    "224.0.0.1",  # multicast
    "239.255.255.250",
    "240.0.0.1",
    "255.255.255.255",
    "192.0.2.1",
    "198.18.0.1",
    "::",
    "::1",
    "fe80::1",
    "fe80::1%eth0",
    "fc00::1",
    "fd12:3456::1",
    "ff02::1",
    "fec0::1",
    "2001:db8::1",
    "100::1",
    # IPv6 forms that carry a blocked IPv4 address
    "::ffff:127.0.0.1",  # mapped
    "::ffff:169.254.169.254",
    "::127.0.0.1",  # compatible
    "::ffff:0:7f00:1",  # SIIT translated
    "64:ff9b::7f00:1",  # NAT64
    "64:ff9b::a9fe:a9fe",
    "64:ff9b:1::1",  # local-use NAT64
    "2002:7f00:1::",  # 6to4 of 127.0.0.1
    "2002:a00:1::1",  # 6to4 of 10.0.0.1
    "2001:0:4136:e378:8000:63bf:80ff:fffe",  # Teredo, client 127.0.0.1
    "2001:0:7f00:1:8000:63bf:f7f7:f7f7",  # Teredo, server 127.0.0.1
    "4000::1",  # outside 2000::/3: reserved
    "not-an-address",
    "",
]

PUBLIC = [
    "8.8.8.8",
    "1.1.1.1",
    "93.184.216.34",
    "100.128.0.1",  # just above CGNAT
    "172.32.0.1",  # just above 172.16/12
    "2606:4700:4700::1111",
    "2a00:1450:4001:82a::200e",
    "::ffff:8.8.8.8",
    "64:ff9b::808:808",
    "2002:808:808::1",
    "2001:0:4136:e378:8000:63bf:f7f7:f7f7",  # Teredo, both ends public
]


@pytest.mark.parametrize("address", BLOCKED)
def test_non_public_addresses_are_refused(address: str) -> None:
    assert not AddressGuard().is_allowed(address)


@pytest.mark.parametrize("address", PUBLIC)
def test_public_addresses_pass(address: str) -> None:
    assert AddressGuard().is_allowed(address)
    assert AddressGuard().is_allowed(ipaddress.ip_address(address))


def test_allowed_private_opens_only_its_cidrs() -> None:
    guard = AddressGuard([ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("fd00::/8")])
    assert guard.is_allowed("127.0.0.1")
    assert guard.is_allowed("::ffff:127.0.0.1")  # the same host on a dual-stack socket
    assert guard.is_allowed("fd00::5")
    assert not guard.is_allowed("10.0.0.1")
    assert not guard.is_allowed("169.254.169.254")
    assert not guard.is_allowed("::1")
    assert guard.is_allowed("8.8.8.8")


@pytest.mark.parametrize(
    "url",
    [
        "http://2130706433/",
        "http://0x7f.1/",
        "http://0177.0.0.1/",
        "http://127.1/",
        "http://169.254.169.254/latest/meta-data/",
        "http://0xa9fea9fe/",
        "http://10.1.2.3/",
        "http://172.16.0.1/",
        "http://192.168.0.1/",
        "http://100.64.0.1/",
        "http://[::1]/",
        "http://[::ffff:127.0.0.1]/",
        "http://[64:ff9b::7f00:1]/",
        "http://[2002:7f00:1::]/",
        "http://0/",
    ],
)
async def test_ip_literal_urls_in_any_spelling_are_refused(url: str) -> None:
    target = parse_target(url)
    with pytest.raises(Unprocessable) as caught:
        await AddressGuard().resolve_and_vet(target.host, target.port)
    assert caught.value.code == "blocked_destination"
    assert caught.value.status == 422


def _resolver(answers: dict[str, list[str]]) -> Resolve:
    async def resolve(host: str, port: int) -> list[str]:
        if host not in answers:
            raise OSError("no such host")
        return answers[host]

    return resolve


async def test_a_name_resolving_to_a_private_address_is_refused_without_naming_it() -> None:
    guard = AddressGuard(resolve=_resolver({"internal.test": ["10.20.30.40"]}))
    with pytest.raises(Unprocessable) as caught:
        await guard.resolve_and_vet("internal.test", 443)
    assert caught.value.code == "blocked_destination"
    assert "not allowed" in caught.value.message
    assert "10.20.30.40" not in caught.value.message


async def test_one_bad_address_refuses_the_whole_host() -> None:
    guard = AddressGuard(resolve=_resolver({"mixed.test": ["8.8.8.8", "127.0.0.1"]}))
    with pytest.raises(Unprocessable):
        await guard.resolve_and_vet("mixed.test", 443)


async def test_public_answers_are_returned() -> None:
    guard = AddressGuard(resolve=_resolver({"public.test": ["8.8.8.8", "2606:4700::1"]}))
    assert await guard.resolve_and_vet("public.test", 443) == ["8.8.8.8", "2606:4700::1"]


async def test_unresolvable_and_empty_answers_are_bad_gateway() -> None:
    guard = AddressGuard(resolve=_resolver({"empty.test": []}))
    for host in ("missing.test", "empty.test"):
        with pytest.raises(BadGateway) as caught:
            await guard.resolve_and_vet(host, 443)
        assert caught.value.code == "upstream_error"


async def test_the_default_resolver_is_getaddrinfo_and_its_answers_are_vetted() -> None:
    addresses = await system_resolve("localhost", 80)
    assert set(addresses) & {"127.0.0.1", "::1"}
    with pytest.raises(Unprocessable):
        await AddressGuard().resolve_and_vet("localhost", 80)
    loopback = [ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128")]
    assert await AddressGuard(loopback).resolve_and_vet("localhost", 80) == addresses


async def test_vetting_resolver_returns_checked_addresses_for_aiohttp() -> None:
    guard = AddressGuard(resolve=_resolver({"dual.test": ["8.8.8.8", "2606:4700::1"]}))
    resolver = VettingResolver(guard)
    results = await resolver.resolve("dual.test", 443, socket.AF_UNSPEC)
    assert [(r["host"], r["family"], r["hostname"], r["port"]) for r in results] == [
        ("8.8.8.8", socket.AF_INET, "dual.test", 443),
        ("2606:4700::1", socket.AF_INET6, "dual.test", 443),
    ]
    only_v4 = await resolver.resolve("dual.test", 443, socket.AF_INET)
    assert [r["host"] for r in only_v4] == ["8.8.8.8"]


async def test_vetting_resolver_refuses_private_answers() -> None:
    guard = AddressGuard(resolve=_resolver({"rebind.test": ["169.254.169.254"]}))
    with pytest.raises(Unprocessable):
        await VettingResolver(guard).resolve("rebind.test", 80, socket.AF_UNSPEC)


class _FixedResolver(AbstractResolver):
    def __init__(self, addresses: Sequence[str]) -> None:
        self.addresses = addresses
        self.closed = False

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        return [
            ResolveResult(hostname=host, host=a, port=port, family=family, proto=0, flags=0)
            for a in self.addresses
        ]

    async def close(self) -> None:
        self.closed = True


async def test_vetting_resolver_vets_an_inner_resolver() -> None:
    good = VettingResolver(AddressGuard(), _FixedResolver(["8.8.8.8"]))
    assert [r["host"] for r in await good.resolve("x.test", 443)] == ["8.8.8.8"]
    bad_inner = _FixedResolver(["8.8.8.8", "192.168.0.1"])
    bad = VettingResolver(AddressGuard(), bad_inner)
    with pytest.raises(Unprocessable):
        await bad.resolve("x.test", 443)
    await bad.close()
    assert bad_inner.closed
