"""Checking a credential's fields for its type, without ever echoing a value."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Final, cast
from urllib.parse import urlsplit

from vaultgate.injection.credential import (
    OPTIONAL_FIELDS,
    REQUIRED_FIELDS,
    Credential,
    CredentialType,
)
from vaultgate.server.errors import Unprocessable
from vaultgate.server.providers import Provider

MAX_VALUE_BYTES = 64 * 1024
_FORBIDDEN = ("\r", "\n", "\x00")


def parse_credential(ctype: CredentialType, raw: Mapping[str, Any]) -> Credential:
    """A Credential with exactly the fields ``ctype`` takes, each a clean, bounded string."""
    required, optional = REQUIRED_FIELDS[ctype], OPTIONAL_FIELDS[ctype]
    for name in raw:
        if name not in required and name not in optional:
            allowed = ", ".join((*required, *optional))
            raise Unprocessable(
                f"credential.{name}: unknown field for type {ctype} (expected {allowed})",
                field=f"credential.{name}",
            )
    fields: dict[str, str] = {}
    for name in (*required, *optional):
        value = raw.get(name)
        if value is None and name in optional:
            continue
        fields[name] = _check_value(name, value)
    _check_oauth(ctype, fields)
    return Credential(ctype, fields)


def parse_provider_credential(provider: Provider, raw: Mapping[str, Any]) -> Credential:
    """A credential for a provider template: its defaults applied, its extra fields allowed."""
    for name, value in raw.items():
        if not isinstance(value, str):
            raise Unprocessable(f"credential.{name}: must be a string", field=f"credential.{name}")
    # Defaults may legitimately be empty (Stripe-style "<key>:" Basic auth), and so may the
    # template's own optional fields (a blank form input: not stored); other values may not.
    blanks = provider.optional_blanks()
    fields = provider.prepare_credential(
        {k: _check_value(k, v, allow_empty=k in blanks) for k, v in raw.items()}
    )
    for name, value in fields.items():
        _check_value(name, value, allow_empty=name not in raw or name in blanks)
    _check_oauth(provider.credential_type, fields)
    return Credential(provider.credential_type, fields)


_OAUTH_AUTH_METHODS: Final = ("client_secret_basic", "client_secret_post", "none")


def _check_oauth(ctype: CredentialType, fields: Mapping[str, str]) -> None:
    """The OAuth fields the vault acts on: endpoint URLs, the client authentication method."""
    if not ctype.startswith("oauth2_"):
        return
    for name in ("token_url", "revoke_url"):
        if name in fields:
            url = urlsplit(fields[name])
            if url.scheme not in ("https", "http") or not url.hostname or url.username:
                raise Unprocessable(
                    f"credential.{name}: must be an absolute https:// (or http://) URL "
                    "without user information",
                    field=f"credential.{name}",
                )
    method = fields.get("client_auth_method")
    if method is not None and method not in _OAUTH_AUTH_METHODS:
        raise Unprocessable(
            f"credential.client_auth_method: must be one of {', '.join(_OAUTH_AUTH_METHODS)}",
            field="credential.client_auth_method",
        )
    if method != "none" and not fields.get("client_secret"):
        raise Unprocessable(
            "credential.client_secret: required unless client_auth_method is none",
            field="credential.client_secret",
        )
    if "expires_at" in fields and not fields["expires_at"].isdigit():
        raise Unprocessable(
            "credential.expires_at: must be unix seconds (digits only)",
            field="credential.expires_at",
        )
    if "expires_at" in fields and "access_token" not in fields:
        raise Unprocessable(
            "credential.expires_at: goes with an access_token", field="credential.expires_at"
        )


def _check_value(name: str, value: object, *, allow_empty: bool = False) -> str:
    where = f"credential.{name}"
    if value is None:
        raise Unprocessable(f"{where}: field required", field=where)
    if not isinstance(value, str):
        raise Unprocessable(f"{where}: must be a string", field=where)
    if not allow_empty and value.strip() == "":
        raise Unprocessable(f"{where}: must not be empty", field=where)
    if len(value.encode()) > MAX_VALUE_BYTES:
        raise Unprocessable(f"{where}: longer than 64 KiB", field=where)
    if any(c in value for c in _FORBIDDEN):
        raise Unprocessable(f"{where}: must not contain CR, LF or NUL", field=where)
    return value


def to_plaintext(credential: Credential) -> bytes:
    return json.dumps(dict(credential), separators=(",", ":"), sort_keys=True).encode()


def from_plaintext(ctype: CredentialType, plaintext: bytes) -> Credential:
    return Credential(ctype, cast(dict[str, str], json.loads(plaintext)))
