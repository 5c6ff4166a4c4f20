"""What a refused destination tells the caller: which part differs and which flag fixes it.

A newcomer calling a local ``http://`` service meets two refusals in turn: the grant's hosts
(a bare ``--host`` means https only) and the address guard (private addresses need a server
flag). Each message names the fix, so nobody has to read the source to find it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

from vaultgate.server.egress.urls import HostPattern, Target

PRIVATE_DESTINATION: Final = (
    "the destination is not allowed: it is a private, loopback, link-local or otherwise "
    "non-public address; a vault started with --allow-private-destinations CIDR "
    "(VAULTGATE_ALLOW_PRIVATE_DESTINATIONS) may reach addresses in that range, "
    "e.g. --allow-private-destinations 127.0.0.1/32 for a service on this machine"
)


def host_refusal(target: Target, patterns: Iterable[HostPattern]) -> str:
    """Why ``target`` is not one of the grant's hosts, naming the entry that would allow it.

    Only entries for the same host are quoted back: they are the caller's own near misses, and
    listing every allowed host would tell a caller more about the grant than it needs.
    """
    same_host = [p for p in patterns if _same_host(p, target)]
    if not same_host:
        return f"{target.origin} is not an allowed destination of this grant"
    allowed = ", ".join(str(p) for p in same_host)
    scheme_only = any(p.scheme != target.scheme and p.port == target.port for p in same_host)
    why = " (a bare --host means https only)" if scheme_only and target.scheme == "http" else ""
    return (
        f"{target.origin} is not allowed; the grant allows {allowed}{why} — add "
        f"an {target.scheme}:// origin with --host {target.origin}"
    )


def _same_host(pattern: HostPattern, target: Target) -> bool:
    if pattern.wildcard:
        label, dot, rest = target.host.partition(".")
        return bool(label and dot) and rest == pattern.host and not target.is_ip
    return pattern.host == target.host
