"""Egress: the request path of every use of a credential (`modes`: one entry per runtime mode),
parsing destinations, checking hosts and addresses, injecting, and forwarding to the upstream.

It owns every outgoing connection; it must never dial an unvetted address or follow a redirect.
"""

from vaultgate.server.egress.client import (
    HOP_BY_HOP,
    UpstreamClient,
    UpstreamResponse,
    UpstreamTimeouts,
    capped,
    strip_hop_by_hop,
)
from vaultgate.server.egress.guard import AddressGuard, Resolve, VettingResolver, system_resolve
from vaultgate.server.egress.urls import (
    HostPattern,
    Target,
    host_allowed,
    normalize_path,
    parse_allowed_host,
    parse_target,
)

__all__ = [
    "HOP_BY_HOP",
    "AddressGuard",
    "HostPattern",
    "Resolve",
    "Target",
    "UpstreamClient",
    "UpstreamResponse",
    "UpstreamTimeouts",
    "VettingResolver",
    "capped",
    "host_allowed",
    "normalize_path",
    "parse_allowed_host",
    "parse_target",
    "strip_hop_by_hop",
    "system_resolve",
]
