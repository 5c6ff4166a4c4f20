"""Which grant an ``/sdk/token`` or ``/sdk/proxy`` body names: ``grant_id``, or ``provider_id``
with the optional ``label``, ``account`` and end user (``app_user_id`` or ``user_token``),
resolved in ``secrets/addressing.py``."""

from __future__ import annotations

from typing import Any

import anyio.to_thread

from vaultgate.server.auth.keys import Principal
from vaultgate.server.errors import Unprocessable
from vaultgate.server.oauth.requests import app_user_of
from vaultgate.server.runtime import Runtime
from vaultgate.server.secrets.addressing import Address, resolve

MAX_NAME = 255


def _name(data: dict[str, Any], field: str, cap: int = MAX_NAME) -> str | None:
    value = data.get(field)
    if value is None:
        return None
    if not isinstance(value, str) or not value or len(value) > cap or not value.isprintable():
        raise Unprocessable(
            f"{field}: must be a printable string of 1 to {cap} characters", field=field
        )
    return value


def _end_user(data: dict[str, Any]) -> str | None:
    """The end user a provider address is for: ``app_user_id``, or the one ``user_token`` names
    (the rule Connect bound the grant with, in ``oauth/requests.py``)."""
    by_id = app_user_of(data.get("app_user_id"), "app_user_id")
    by_token = app_user_of(data.get("user_token"), "user_token")
    if by_id is not None and by_token is not None and by_id != by_token:
        raise Unprocessable("app_user_id and user_token name different users", field="app_user_id")
    return by_id or by_token


async def grant_id_of(rt: Runtime, principal: Principal, data: dict[str, Any]) -> str:
    grant_id = _name(data, "grant_id", cap=64)
    provider = _name(data, "provider_id")
    if grant_id is not None:
        if provider is not None:
            raise Unprocessable("give grant_id or provider_id, not both", field="provider_id")
        return grant_id
    if provider is None:
        raise Unprocessable("grant_id: field required (or provider_id)", field="grant_id")
    address = Address(provider, _name(data, "label"), _name(data, "account"), _end_user(data))
    app_id = str(principal.app_id)
    return await anyio.to_thread.run_sync(resolve, rt.engine, app_id, address, rt.clock())
