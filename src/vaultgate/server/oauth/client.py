"""One token request to a provider, through Authlib's httpx client; no token protocol of our own.

The answer is classified for the caller: a grant the provider refuses for good (the credential
must be re-authorised) versus a failure worth retrying (network, 5xx, rate limits).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final

from vaultgate.injection.credential import Credential

# RFC 6749 5.2 codes that no retry will fix: the grant or the client is no longer good.
REFUSALS: Final = frozenset(
    {"invalid_grant", "invalid_client", "unauthorized_client", "invalid_scope", "access_denied"}
)
AUTH_METHODS: Final = ("client_secret_basic", "client_secret_post", "none")
_RETRYABLE_STATUS: Final = frozenset({408, 425, 429})


@dataclass(frozen=True, slots=True)
class TokenAnswer:
    """What the token endpoint issued; the reprs hide the values."""

    access_token: str = field(repr=False)
    expires_in: float | None
    refresh_token: str | None = field(default=None, repr=False)


class TokenRefused(Exception):
    """The provider refused the grant (``code`` is its RFC 6749 error code, never its text)."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


class TokenUnreachable(Exception):
    """The token request failed in a way a later attempt may not (``code`` says how)."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


def request_token(
    credential: Credential, refresh_token: str | None, *, timeout: float
) -> TokenAnswer:
    """A fresh access token: the client-credentials grant, or a refresh with ``refresh_token``."""
    # Imported here: the server must load without httpx (the SDK's client), which only the
    # token requests need. Authlib ships no type information (types-Authlib is not locked).
    from authlib.integrations.base_client.errors import OAuthError  # type: ignore[import-untyped]
    from authlib.integrations.httpx_client import OAuth2Client  # type: ignore[import-untyped]

    # The HTTP library Authlib's client is built on (httpx2, or httpx where that is missing):
    # its exceptions are the ones a failed token request raises.
    from authlib.integrations.httpx_client._compat import (  # type: ignore[import-untyped]
        httpx2 as httpx,
    )

    method = credential.get("client_auth_method") or "client_secret_basic"
    client = OAuth2Client(
        client_id=credential["client_id"],
        client_secret=credential.get("client_secret"),
        token_endpoint_auth_method=method,
        scope=credential.get("scopes") or None,
        timeout=timeout,
        trust_env=False,  # proxies from the environment must not see client secrets
        follow_redirects=False,
    )
    try:
        with client:
            token = _call(client, credential, refresh_token)
    except OAuthError as exc:
        code = str(exc.error or "")
        if code in REFUSALS:
            raise TokenRefused(code) from None
        raise TokenUnreachable("token_endpoint_error") from None
    except httpx.HTTPStatusError as exc:
        status = exc.response.status_code
        if 400 <= status < 500 and status not in _RETRYABLE_STATUS:
            raise TokenRefused(f"http_{status}") from None
        raise TokenUnreachable("token_endpoint_error") from None
    except (httpx.HTTPError, ValueError):
        raise TokenUnreachable("token_endpoint_unreachable") from None
    return _answer(token)


def _call(client: Any, credential: Credential, refresh_token: str | None) -> Any:
    url = credential["token_url"]
    if refresh_token is not None:
        return client.refresh_token(url, refresh_token=refresh_token)
    extra = {"audience": credential["audience"]} if credential.get("audience") else {}
    return client.fetch_token(url, grant_type="client_credentials", **extra)


def _answer(token: Any) -> TokenAnswer:
    access = token.get("access_token") if isinstance(token, dict) else None
    if not isinstance(access, str) or not access or any(c in access for c in "\r\n\x00"):
        raise TokenUnreachable("token_endpoint_error")
    expires_in = _lifetime(token.get("expires_in"))
    refresh = token.get("refresh_token")
    rotated = refresh if isinstance(refresh, str) and refresh else None
    return TokenAnswer(access, expires_in, rotated)


def _lifetime(raw: object) -> float | None:
    # Some providers send expires_in as a string ("3600").
    if isinstance(raw, str) and raw.isdigit():
        raw = int(raw)
    if isinstance(raw, int | float) and not isinstance(raw, bool) and raw > 0:
        return float(raw)
    return None
