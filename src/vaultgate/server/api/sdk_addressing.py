"""Which grant an ``/sdk/token`` or ``/sdk/proxy`` body names: ``grant_id``, or ``provider_id``
with the optional ``label`` and ``account`` (resolved in ``secrets/addressing.py``)."""

from __future__ import annotations

from typing import Any

import anyio.to_thread

from vaultgate.server.auth.keys import Principal
from vaultgate.server.errors import InvalidInput, Unprocessable
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


async def grant_id_of(rt: Runtime, principal: Principal, data: dict[str, Any]) -> str:
    grant_id = _name(data, "grant_id", cap=64)
    provider = _name(data, "provider_id")
    if grant_id is not None:
        if provider is not None:
            raise Unprocessable("give grant_id or provider_id, not both", field="provider_id")
        return grant_id
    if provider is None:
        raise Unprocessable("grant_id: field required (or provider_id)", field="grant_id")
    for unsupported in ("user_token", "app_user_id"):
        if data.get(unsupported) is not None:
            raise InvalidInput(
                f"{unsupported}: vaultgate has no end-user identities; address the app's grant",
                code="user_scoping_not_supported",
                field=unsupported,
            )
    address = Address(provider, _name(data, "label"), _name(data, "account"))
    app_id = str(principal.app_id)
    return await anyio.to_thread.run_sync(resolve, rt.engine, app_id, address, rt.clock())
