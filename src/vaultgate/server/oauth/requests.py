"""The official client's ``create_connect_session`` body, read strictly, and who the end user is.

vaultgate has no identity provider of its own: the app (its key is the trust boundary) names its
end user with ``user_token``. A JWT counts by its ``sub`` claim, read but not verified (an app key
can already address every grant of its app); any other string is the user id itself. The same
rule reads ``user_token`` and ``app_user_id`` on ``request(provider=...)``.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import urlsplit

from vaultgate.server.errors import InvalidInput, Unprocessable

MAX_USER: Final = 255
# Fields the client sends that this vault does not act on: refused when set, never ignored.
_UNSUPPORTED: Final = (
    "agent",
    "requested_grant",
    "repair_grant_id",
    "delegable",
    "scope_constraint",
    "grant_policy",
)
_KNOWN: Final = {
    *_UNSUPPORTED,
    "allowed_providers",
    "return_url",
    "allowed_origin",
    "metadata",
    "required_scopes",
    "switch_account",
    "allow_user_policy_rules",
    "direct",
    "user_token",
}


@dataclass(frozen=True, slots=True)
class SessionRequest:
    providers: list[str] | None
    app_user_id: str | None
    return_url: str | None
    direct: bool
    required_scopes: dict[str, list[str]] = field(default_factory=dict)


def app_user_of(value: str | None, where: str = "user_token") -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value or len(value) > 8192:
        raise Unprocessable(f"{where}: must be a non-empty string", field=where)
    parts = value.split(".")
    if len(parts) == 3 and len(value) > 40:
        value = _jwt_subject(parts[1], where)
    if len(value) > MAX_USER or not value.isprintable():
        raise Unprocessable(
            f"{where}: an end-user id is 1 to {MAX_USER} printable characters", field=where
        )
    return value


def _jwt_subject(payload: str, where: str) -> str:
    try:
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (binascii.Error, ValueError, UnicodeDecodeError, RecursionError):
        claims = None
    sub = claims.get("sub") if isinstance(claims, dict) else None
    if not isinstance(sub, str) or not sub:
        raise Unprocessable(f"{where}: a JWT without a sub claim names no end user", field=where)
    return sub


def parse_session_request(data: dict[str, Any]) -> SessionRequest:
    unknown = sorted(set(data) - _KNOWN)
    if unknown:
        raise Unprocessable(f"{unknown[0]}: unknown field", field=unknown[0])
    for name in _UNSUPPORTED:
        if data.get(name) is not None:
            raise InvalidInput(
                f"{name}: vaultgate's Connect does not support this option",
                code="not_supported",
                field=name,
            )
    return SessionRequest(
        providers=_providers(data.get("allowed_providers")),
        app_user_id=app_user_of(data.get("user_token")),
        return_url=_return_url(data.get("return_url")),
        direct=data.get("direct") is True,
        required_scopes=_required_scopes(data.get("required_scopes")),
    )


def _providers(raw: Any) -> list[str] | None:
    if raw is None:
        return None
    if not isinstance(raw, list) or not raw or not all(isinstance(p, str) and p for p in raw):
        raise Unprocessable(
            "allowed_providers: a non-empty list of provider ids", field="allowed_providers"
        )
    return sorted({p.strip().lower() for p in raw})


def _return_url(raw: Any) -> str | None:
    if raw is None:
        return None
    parts = urlsplit(raw) if isinstance(raw, str) and len(raw) <= 2048 else None
    if parts is None or parts.scheme not in ("https", "http") or not parts.hostname:
        raise Unprocessable("return_url: must be an absolute http(s) URL", field="return_url")
    return str(raw)


def _required_scopes(raw: Any) -> dict[str, list[str]]:
    if raw is None:
        return {}
    ok = isinstance(raw, dict) and all(
        isinstance(k, str) and isinstance(v, list) and all(isinstance(s, str) for s in v)
        for k, v in raw.items()
    )
    if not ok:
        raise Unprocessable(
            "required_scopes: a map of provider id to a list of scopes", field="required_scopes"
        )
    return {str(k): list(v) for k, v in raw.items()}
