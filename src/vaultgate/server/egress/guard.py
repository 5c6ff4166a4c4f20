"""The address guard: only public destinations, checked on the very addresses connected to.

The check lives in the resolver that aiohttp connects through (`VettingResolver`), so the address
that passed is the address dialled: a DNS answer cannot change between the check and the connect.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Final

from aiohttp.abc import AbstractResolver, ResolveResult

from vaultgate.server.egress.refusals import PRIVATE_DESTINATION
from vaultgate.server.errors import BadGateway, Unprocessable

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
# (host, port) -> the addresses the host resolves to; injectable so tests can point names anywhere.
Resolve = Callable[[str, int], Awaitable[Sequence[str]]]

_v4 = ipaddress.IPv4Network
_v6 = ipaddress.IPv6Network

# Written out rather than left to `is_private`/`is_global`, whose meaning has shifted between
# Python releases; `is_global` is still consulted for IPv4 as a second net.
_BLOCKED_V4: Final = tuple(
    _v4(n)
    for n in (
        "0.0.0.0/8",  # "this network"; 0.0.0.0 reaches the local host on Linux
        "10.0.0.0/8",
        "100.64.0.0/10",  # carrier-grade NAT
        "127.0.0.0/8",
        "169.254.0.0/16",  # link-local, including the 169.254.169.254 cloud metadata service
        "172.16.0.0/12",
        "192.0.0.0/24",
        "192.0.2.0/24",
        "192.88.99.0/24",  # 6to4 relay anycast
        "192.168.0.0/16",
        "198.18.0.0/15",
        "198.51.100.0/24",
        "203.0.113.0/24",
        "224.0.0.0/4",  # multicast
        "240.0.0.0/4",  # reserved, and 255.255.255.255 broadcast
    )
)
_BLOCKED_V6: Final = tuple(
    _v6(n)
    for n in (
        "::/128",
        "::1/128",
        "64:ff9b:1::/48",  # local-use NAT64
        "100::/64",  # discard
        "2001:db8::/32",  # documentation
        "2001:10::/28",
        "fc00::/7",  # unique local
        "fe80::/10",  # link-local
        "fec0::/10",  # old site-local
        "ff00::/8",  # multicast
    )
)
_GLOBAL_UNICAST: Final = _v6("2000::/3")
_MAPPED: Final = _v6("::ffff:0:0/96")
_TRANSLATED: Final = _v6("::ffff:0:0:0/96")
_COMPATIBLE: Final = _v6("::/96")
_NAT64: Final = _v6("64:ff9b::/96")


def _embedded_v4(address: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address] | None:
    """The IPv4 addresses an IPv6 form carries (the ones it would really reach), if it is one."""
    low32 = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if any(address in net for net in (_MAPPED, _TRANSLATED, _COMPATIBLE, _NAT64)):
        return [low32]
    if address.sixtofour is not None:
        return [address.sixtofour]
    if address.teredo is not None:
        return list(address.teredo)
    return None


def _v4_blocked(address: ipaddress.IPv4Address) -> bool:
    return any(address in net for net in _BLOCKED_V4) or not address.is_global


def _v6_blocked(address: ipaddress.IPv6Address) -> bool:
    if any(address in net for net in _BLOCKED_V6):
        return True
    embedded = _embedded_v4(address)
    if embedded is not None:
        return any(_v4_blocked(inner) for inner in embedded)
    # Everything outside 2000::/3 is reserved by the IETF: nothing public lives there.
    return address not in _GLOBAL_UNICAST


_VERDICTS_KEPT: Final = 4096


def _parse(address: str | IPAddress) -> IPAddress | None:
    if not isinstance(address, str):
        return address
    try:
        return ipaddress.ip_address(address)
    except ValueError:
        return None


async def system_resolve(host: str, port: int) -> list[str]:
    """The running loop's getaddrinfo, as the guard's default resolver."""
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


class AddressGuard:
    """Decides which IP addresses the vault may connect to.

    ``allowed_private`` (``--allow-private-destinations``) opens CIDRs that would otherwise be
    refused, for tests and local development. ``resolve`` replaces DNS (tests).
    """

    def __init__(
        self, allowed_private: Sequence[IPNetwork] = (), *, resolve: Resolve | None = None
    ) -> None:
        self._allowed = tuple(allowed_private)
        self._resolve: Resolve = resolve or system_resolve
        self._passed: dict[tuple[str, int], float] = {}
        # An address's verdict never changes for a guard: parsing it and walking the blocked
        # ranges on every request cost more than the rest of the vetting. Bounded, cleared whole.
        self._verdicts: dict[str, bool] = {}

    def is_allowed(self, ip: str | IPAddress) -> bool:
        if not isinstance(ip, str):
            return self._decide(ip)
        verdict = self._verdicts.get(ip)
        if verdict is None:
            if len(self._verdicts) >= _VERDICTS_KEPT:
                self._verdicts.clear()
            verdict = self._verdicts[ip] = self._decide(ip)
        return verdict

    def _decide(self, ip: str | IPAddress) -> bool:
        address = _parse(ip)
        if address is None:
            return False  # fail closed on anything that is not an address
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            # A mapped address is the IPv4 host itself on a dual-stack socket.
            address = address.ipv4_mapped
        if any(address.version == net.version and address in net for net in self._allowed):
            return True
        if isinstance(address, ipaddress.IPv4Address):
            return not _v4_blocked(address)
        return not _v6_blocked(address)

    def vet(self, addresses: Iterable[str]) -> list[str]:
        """All of ``addresses`` if every one is allowed; else the whole destination is refused."""
        vetted = list(addresses)
        if not vetted:
            raise BadGateway("the destination host has no address", code="upstream_error")
        if not all(self.is_allowed(address) for address in vetted):
            # The addresses stay out of the message: it should not map the internal network.
            raise Unprocessable(
                PRIVATE_DESTINATION,
                code="blocked_destination",
                field="url",
            )
        return vetted

    async def resolve_and_vet(self, host: str, port: int) -> list[str]:
        """Resolve ``host`` and return its addresses, all checked, or refuse the destination."""
        if _parse(host) is not None:
            return self.vet([host])
        try:
            addresses = await self._resolve(host, port)
        except OSError:
            raise BadGateway(
                "the destination host could not be resolved", code="upstream_error"
            ) from None
        return self.vet(addresses)

    async def prevet(self, host: str, port: int) -> None:
        """`resolve_and_vet` before a proxied request's credential is opened, answered from
        memory for a name that passed in the last few seconds.

        Only the proxy modes use it: there the resolver vets again on the very address dialled
        (`VettingResolver`), so this check decides what the audit trail says (a refusal), never
        where the vault connects, and a short memory of passes costs no safety.
        """
        key = (host, port)
        now = time.monotonic()
        if self._passed.get(key, 0.0) > now:
            return
        await self.resolve_and_vet(host, port)
        if len(self._passed) >= _PREVET_MEMORY:
            self._passed.clear()
        self._passed[key] = now + _PREVET_SECONDS


_PREVET_SECONDS: Final = 5.0
_PREVET_MEMORY: Final = 4096


class VettingResolver(AbstractResolver):
    """An aiohttp resolver that hands the connector only addresses the guard has passed.

    With ``inner_resolver`` it vets that resolver's answers; without, it uses the guard's own
    ``resolve``. aiohttp skips the resolver for IP literals, so callers vet those themselves
    (`UpstreamClient` does).
    """

    def __init__(self, guard: AddressGuard, inner_resolver: AbstractResolver | None = None) -> None:
        self._guard = guard
        self._inner = inner_resolver

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        if self._inner is not None:
            results = await self._inner.resolve(host, port, family)
            self._guard.vet(result["host"] for result in results)
            return results
        addresses = await self._guard.resolve_and_vet(host, port)
        results = [_result(host, address, port) for address in addresses]
        if family not in (socket.AF_UNSPEC, 0):
            results = [r for r in results if r["family"] == family]
        if not results:
            raise OSError(f"no address of the requested family for {host}")
        return results

    async def close(self) -> None:
        if self._inner is not None:
            await self._inner.close()


def _result(hostname: str, address: str, port: int) -> ResolveResult:
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    return ResolveResult(
        hostname=hostname,
        host=address,
        port=port,
        family=family,
        proto=0,
        flags=socket.AI_NUMERICHOST | socket.AI_NUMERICSERV,
    )
