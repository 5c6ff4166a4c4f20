"""Request-scoped helpers: the runtime, the admin principal, the caller's address."""

from __future__ import annotations

import ipaddress
from typing import Annotated, cast

from fastapi import Depends, Request

from vaultgate.server.auth.keys import Principal
from vaultgate.server.auth.services import Actor
from vaultgate.server.errors import Forbidden
from vaultgate.server.runtime import Runtime
from vaultgate.server.settings import Network


def runtime(request: Request) -> Runtime:
    return cast(Runtime, request.app.state.runtime)


def bearer(authorization: str | None) -> str | None:
    if authorization and authorization[:7].lower() == "bearer ":
        return authorization[7:].strip()
    return None


def client_ip(
    scope_client: tuple[str, int] | None, forwarded: str | None, trusted: tuple[Network, ...]
) -> str | None:
    """The socket peer, or the X-Forwarded-For address when the peer is a trusted proxy."""
    peer = scope_client[0] if scope_client else None
    if peer is None or not forwarded or not trusted:
        return peer
    try:
        peer_ip = ipaddress.ip_address(peer)
    except ValueError:
        return peer
    if not any(peer_ip in net for net in trusted):
        return peer
    # The right-most address not itself a trusted proxy is the client.
    for hop in reversed([h.strip() for h in forwarded.split(",") if h.strip()]):
        try:
            ip = ipaddress.ip_address(hop)
        except ValueError:
            return peer
        if not any(ip in net for net in trusted):
            return str(ip)
    return peer


def request_ip(request: Request) -> str | None:
    rt = runtime(request)
    client = request.scope.get("client")
    return client_ip(client, request.headers.get("x-forwarded-for"), rt.settings.trusted_proxies)


def admin(request: Request) -> Principal:
    principal = runtime(request).keys.authenticate(bearer(request.headers.get("authorization")))
    if not principal.is_admin:
        raise Forbidden(
            "the management API needs an admin key; this is an app key", code="forbidden"
        )
    return principal


def admin_actor(request: Request, principal: Annotated[Principal, Depends(admin)]) -> Actor:
    return Actor(key_id=principal.key_id, source_ip=request_ip(request))


AdminActor = Annotated[Actor, Depends(admin_actor)]
Rt = Annotated[Runtime, Depends(runtime)]
