"""The official client's managed agents: ``app.agents.*`` (create, list, get, get_by_name,
update, suspend, resume, delete; mint_key, list_keys, deprecate_key, undeprecate_key,
revoke_key) and ``Agent.me()``, HMAC-signed like the rest of ``/sdk``.

Answers are the client's models field for field (``agents/models.py``); the work is in
``agents/services.py``. Scopes: ``agents:read`` and ``agents:write`` (auth/scopes.py).
"""

from __future__ import annotations

from typing import Any

import anyio.to_thread
from fastapi import APIRouter, Request
from starlette.responses import Response

from vaultgate.server.agents import models
from vaultgate.server.api.deps import request_ip
from vaultgate.server.api.sdk import _authenticate, _json, _payload
from vaultgate.server.auth.services import Actor
from vaultgate.server.errors import Forbidden, Unprocessable
from vaultgate.server.runtime import Runtime

router = APIRouter(prefix="/sdk", tags=["sdk"])


async def _begin(request: Request) -> tuple[Runtime, str, dict[str, Any], Actor]:
    rt, principal, body, _ = await _authenticate(request)
    data = _payload(body) if body else {}
    actor = Actor(key_id=principal.key_id, source_ip=request_ip(request))
    return rt, str(principal.app_id), data, actor


@router.get("/agents/me")
async def me(request: Request) -> Response:
    rt, principal, _, _ = await _authenticate(request)
    if principal.agent_id is None:
        raise Forbidden(
            "Agent.me() takes a managed agent's own key, not the app's",
            code="me_requires_agent_key",
        )
    found = await anyio.to_thread.run_sync(rt.agents.get, str(principal.app_id), principal.agent_id)
    return _json(found)


@router.post("/agents")
async def create_agent(request: Request) -> Response:
    rt, app_id, data, actor = await _begin(request)
    if request.headers.get("idempotency-key") is not None:
        # Ignoring it would turn the client's safe retry into a duplicate-name conflict.
        raise Unprocessable(
            "Idempotency-Key: vaultgate does not replay agent creation; retry without it",
            code="idempotency_not_supported",
            field="Idempotency-Key",
        )
    new = models.parse_new(data)
    created = await anyio.to_thread.run_sync(rt.agents.create, app_id, new, actor)
    return _json(created, status=201, headers={"Cache-Control": "no-store"})


@router.get("/agents")
async def list_agents(request: Request) -> Response:
    rt, app_id, _, _ = await _begin(request)
    q = request.query_params
    name = q.get("name")

    def run() -> dict[str, Any]:
        return rt.agents.list_agents(
            app_id,
            name=None if name is None else models.parse_name(name),
            include_revoked=models.parse_flag(q.get("include_revoked"), "include_revoked"),
            limit=models.parse_count(q.get("limit"), "limit", 100, 1, 1000),
            offset=models.parse_count(q.get("offset"), "offset", 0, 0, 2**31 - 1),
        )

    return _json(await anyio.to_thread.run_sync(run))


@router.get("/agents/{agent_id}")
async def get_agent(agent_id: str, request: Request) -> Response:
    rt, app_id, _, _ = await _begin(request)
    return _json(await anyio.to_thread.run_sync(rt.agents.get, app_id, agent_id))


@router.patch("/agents/{agent_id}")
async def update_agent(agent_id: str, request: Request) -> Response:
    rt, app_id, data, actor = await _begin(request)
    changes = models.parse_changes(data)
    q = request.query_params
    version = q.get("expected_version")
    expected = (
        None
        if version is None
        else models.parse_count(version, "expected_version", 1, 1, 2**31 - 1)
    )
    models.parse_count(q.get("grace_seconds"), "grace_seconds", 0, 0, models.MAX_GRACE_SECONDS)
    update = rt.agents.update
    found = await anyio.to_thread.run_sync(update, app_id, agent_id, changes, expected, actor)
    return _json(found)


@router.delete("/agents/{agent_id}")
async def delete_agent(agent_id: str, request: Request) -> Response:
    rt, app_id, _, actor = await _begin(request)
    return _json(await anyio.to_thread.run_sync(rt.agents.delete, app_id, agent_id, actor))


@router.post("/agents/{agent_id}/keys")
async def mint_key(agent_id: str, request: Request) -> Response:
    rt, app_id, _, actor = await _begin(request)
    minted = await anyio.to_thread.run_sync(rt.agents.mint_key, app_id, agent_id, actor)
    return _json(minted, status=201, headers={"Cache-Control": "no-store"})


@router.get("/agents/{agent_id}/keys")
async def list_keys(agent_id: str, request: Request) -> Response:
    rt, app_id, _, _ = await _begin(request)
    return _json(await anyio.to_thread.run_sync(rt.agents.list_keys, app_id, agent_id))


@router.patch("/agents/{agent_id}/keys/{key_id}/deprecate")
async def deprecate_key(agent_id: str, key_id: str, request: Request) -> Response:
    rt, app_id, _, actor = await _begin(request)
    change = rt.agents.set_deprecated
    return _json(await anyio.to_thread.run_sync(change, app_id, agent_id, key_id, True, actor))


@router.patch("/agents/{agent_id}/keys/{key_id}/undeprecate")
async def undeprecate_key(agent_id: str, key_id: str, request: Request) -> Response:
    rt, app_id, _, actor = await _begin(request)
    change = rt.agents.set_deprecated
    return _json(await anyio.to_thread.run_sync(change, app_id, agent_id, key_id, False, actor))


@router.delete("/agents/{agent_id}/keys/{key_id}")
async def revoke_key(agent_id: str, key_id: str, request: Request) -> Response:
    rt, app_id, _, actor = await _begin(request)
    force = models.parse_flag(request.query_params.get("force"), "force")
    revoke = rt.agents.revoke_key
    return _json(await anyio.to_thread.run_sync(revoke, app_id, agent_id, key_id, force, actor))
