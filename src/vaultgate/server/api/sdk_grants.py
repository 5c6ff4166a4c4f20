"""The official client's grant administration: ``list_grants``, ``mint_grant``,
``create_managed_secret_grant`` and ``revoke_grant``, HMAC-signed like the rest of ``/sdk``.

The answers are the client's pydantic models field for field (``UnifiedGrantListResult`` of
``ManagedSecretGrantItem``, ``GrantInfo``, ``CreateGrantResult``, ``RevokeGrantResult``); the
service work is in ``secrets/sdk_grants.py``.
"""

from __future__ import annotations

from typing import Any

import anyio.to_thread
from fastapi import APIRouter, Request
from starlette.responses import Response

from vaultgate.server.api.deps import request_ip
from vaultgate.server.api.sdk import _authenticate, _json, _payload
from vaultgate.server.auth.services import Actor
from vaultgate.server.errors import InvalidInput, Unprocessable
from vaultgate.server.secrets.sdk_grants import MAX_LABEL, MAX_LIMIT, GrantQuery, SdkGrants

router = APIRouter(prefix="/sdk", tags=["sdk"])


async def _begin(request: Request) -> tuple[Any, str, dict[str, Any], Actor]:
    rt, principal, body, _ = await _authenticate(request)
    data = _payload(body) if body else {}
    if data.get("user_token") is not None:
        # Silently ignoring it would widen a call meant for one end user to the whole app.
        raise InvalidInput(
            "user_token: vaultgate has no end-user identities; call without a user token",
            code="user_scoping_not_supported",
            field="user_token",
        )
    actor = Actor(key_id=principal.key_id, source_ip=request_ip(request))
    return rt, str(principal.app_id), data, actor


def _int(data: dict[str, Any], name: str, default: int, low: int, high: int) -> int:
    value = data.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise Unprocessable(f"{name}: must be a whole number from {low} to {high}", field=name)
    return value


def _text(data: dict[str, Any], name: str, *, required: bool = False) -> str | None:
    value = data.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not 0 < len(value) <= MAX_LABEL:
        raise Unprocessable(f"{name}: must be a string of 1 to {MAX_LABEL} characters", field=name)
    if not value.isprintable():
        raise Unprocessable(f"{name}: must not contain control characters", field=name)
    return value


@router.post("/grants/list")
async def list_grants(request: Request) -> Response:
    rt, app_id, data, _ = await _begin(request)
    query = GrantQuery(
        limit=_int(data, "limit", 100, 1, MAX_LIMIT),
        offset=_int(data, "offset", 0, 0, 2**31 - 1),
        provider_id=_text(data, "provider_id"),
        status=_text(data, "status"),
        account=_text(data, "account"),
        label=_text(data, "label"),
    )
    result = await anyio.to_thread.run_sync(SdkGrants(rt.grants).list, app_id, query, rt.clock())
    return _json(result)


@router.post("/grants/{grant_id}/mint")
async def mint_grant(grant_id: str, request: Request) -> Response:
    rt, app_id, data, actor = await _begin(request)
    label = str(_text(data, "label", required=True))
    if data.get("grant_tags") is not None:
        raise Unprocessable("grant_tags: vaultgate grants carry no tags", field="grant_tags")
    mint = SdkGrants(rt.grants).mint
    result = await anyio.to_thread.run_sync(
        mint, app_id, grant_id, label, data.get("grant_policy"), actor
    )
    return _json(result, status=201)


@router.post("/managed-secrets/{secret_id}/grants")
async def create_managed_secret_grant(secret_id: str, request: Request) -> Response:
    rt, app_id, data, actor = await _begin(request)
    create = SdkGrants(rt.grants).create
    result = await anyio.to_thread.run_sync(
        create,
        app_id,
        secret_id,
        data.get("principal"),
        data.get("grant_policy"),
        data.get("credential_id"),
        actor,
    )
    return _json(result, status=201)


@router.post("/oauth/grants/{grant_id}/revoke")
async def revoke_grant(grant_id: str, request: Request) -> Response:
    rt, app_id, data, actor = await _begin(request)
    reason = data.get("reason")
    if reason is not None and not isinstance(reason, str):
        raise Unprocessable("reason: must be a string", field="reason")
    revoke = SdkGrants(rt.grants).revoke
    result = await anyio.to_thread.run_sync(revoke, app_id, grant_id, reason, actor, rt.clock())
    return _json(result)
