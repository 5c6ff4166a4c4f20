"""The vault's side of the authorization-code flow, all through Authlib's httpx client: the
authorization URL (PKCE S256 and ``state``), the code exchange, the userinfo read, revocation.

No token request is written by hand here. Every endpoint's host is vetted by the egress guard
before the call, so an OAuth app cannot point the vault at its own network.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx
from authlib.common.security import generate_token  # type: ignore[import-untyped]
from authlib.integrations.httpx_client import (  # type: ignore[import-untyped]
    AsyncOAuth2Client,
    OAuthError,
)

from vaultgate.server.egress.guard import AddressGuard
from vaultgate.server.errors import BadGateway
from vaultgate.server.oauth.apps import OAuthClient

log = logging.getLogger(__name__)

TIMEOUT = 20.0


class ExchangeRefused(Exception):
    """The provider refused the code (``invalid_grant``, a wrong verifier...): its error code
    only, never its description, which may echo what was sent."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


@dataclass(frozen=True, slots=True)
class Tokens:
    """What the code exchange returned; the values never print."""

    access_token: str = field(repr=False)
    refresh_token: str | None = field(repr=False)
    expires_at: int | None
    scopes: tuple[str, ...]
    raw: Mapping[str, Any] = field(repr=False)


def new_verifier() -> str:
    return str(generate_token(64))  # 64 of [A-Za-z0-9]: RFC 7636's 43 to 128 unreserved characters


def new_state() -> str:
    return str(generate_token(40))


def _client(oauth: OAuthClient, scopes: tuple[str, ...] | None = None) -> AsyncOAuth2Client:
    return AsyncOAuth2Client(
        client_id=oauth.client_id,
        client_secret=oauth.client_secret,
        token_endpoint_auth_method=oauth.endpoints.client_auth_method,
        revocation_endpoint_auth_method=oauth.endpoints.client_auth_method,
        scope=" ".join(scopes if scopes is not None else oauth.scopes) or None,
        redirect_uri=oauth.redirect_uri,
        code_challenge_method="S256" if oauth.endpoints.pkce else None,
        timeout=TIMEOUT,
        trust_env=False,
        follow_redirects=False,
        headers={"Accept": "application/json"},
    )


def authorization_url(
    oauth: OAuthClient, *, state: str, verifier: str, scopes: tuple[str, ...]
) -> str:
    client = _client(oauth, scopes)
    extra = dict(oauth.endpoints.extra_authorize)
    url, _ = client.create_authorization_url(
        oauth.endpoints.authorize_url,
        state=state,
        code_verifier=verifier if oauth.endpoints.pkce else None,
        **extra,
    )
    return str(url)


async def _vet(guard: AddressGuard, url: str) -> None:
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    await guard.resolve_and_vet(parts.hostname or "", port)


async def exchange_code(
    guard: AddressGuard, oauth: OAuthClient, *, code: str, verifier: str
) -> Tokens:
    """Trade the code for tokens; `ExchangeRefused` when the provider says no."""
    await _vet(guard, oauth.endpoints.token_url)
    async with _client(oauth) as client:
        try:
            token = await client.fetch_token(
                oauth.endpoints.token_url,
                grant_type="authorization_code",
                code=code,
                code_verifier=verifier if oauth.endpoints.pkce else None,
            )
        except OAuthError as exc:
            raise ExchangeRefused(str(exc.error or "oauth_error")[:64]) from None
        except (httpx.HTTPError, ValueError):
            raise ExchangeRefused("token_endpoint_unreachable") from None
    access = token.get("access_token")
    if not isinstance(access, str) or not access:
        raise ExchangeRefused("no_access_token")
    refresh = token.get("refresh_token")
    granted = token.get("scope")
    expires_at = token.get("expires_at")
    return Tokens(
        access_token=access,
        refresh_token=refresh if isinstance(refresh, str) and refresh else None,
        expires_at=int(expires_at) if isinstance(expires_at, int | float) else None,
        scopes=tuple(granted.split()) if isinstance(granted, str) else (),
        raw=dict(token),
    )


async def userinfo(guard: AddressGuard, url: str, access_token: str) -> dict[str, Any]:
    """The provider's answer about the signed-in account, read with the new access token."""
    await _vet(guard, url)
    headers = {"Authorization": f"Bearer {access_token}", "Accept": "application/json"}
    try:
        async with httpx.AsyncClient(
            timeout=TIMEOUT, trust_env=False, follow_redirects=False
        ) as client:
            response = await client.get(url, headers=headers)
        data = response.json() if response.status_code == 200 else None
    except (httpx.HTTPError, ValueError):
        data = None
    if not isinstance(data, dict):
        raise BadGateway("the provider's userinfo endpoint gave no account", code="upstream_error")
    return data


async def revoke(guard: AddressGuard, oauth: OAuthClient, token: str, hint: str) -> bool:
    """RFC 7009 revocation through Authlib; True when the provider acknowledged it."""
    url = oauth.endpoints.revoke_url
    if url is None:
        return False
    try:
        await _vet(guard, url)
        async with _client(oauth) as client:
            response = await client.revoke_token(url, token=token, token_type_hint=hint)
        return bool(response.status_code == 200)
    except Exception:
        # Revocation is best effort: the vault forgets the tokens whatever the provider says.
        log.warning("token revocation at %s failed", urlsplit(url).hostname)
        return False


def dotted(data: Mapping[str, Any], path: str | None) -> str | None:
    """``team.id`` in ``{"team": {"id": "T1"}}``; None when absent or not a scalar."""
    if not path:
        return None
    value: Any = data
    for part in path.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    if isinstance(value, bool) or not isinstance(value, str | int):
        return None
    text = str(value)
    return text[:255] if text else None
