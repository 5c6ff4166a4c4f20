"""The official client's scoped keys: ``keys.derive``, ``keys.rotate``, ``keys.revoke`` and
``scopes.list()``; the service work is in ``auth/key_controls.py``."""

from __future__ import annotations

import anyio.to_thread
from fastapi import APIRouter, Request
from starlette.responses import Response

from vaultgate.server.api.deps import request_ip
from vaultgate.server.api.sdk import _authenticate, _json, _payload
from vaultgate.server.auth.scopes import catalog
from vaultgate.server.auth.services import Actor

router = APIRouter(prefix="/sdk", tags=["sdk"])


@router.get("/scopes")
async def list_scopes(request: Request) -> Response:
    await _authenticate(request)
    return _json(catalog())


@router.post("/keys/derive")
async def derive_key(request: Request) -> Response:
    rt, principal, body, _ = await _authenticate(request)
    actor = Actor(key_id=principal.key_id, source_ip=request_ip(request))
    minted = await anyio.to_thread.run_sync(
        rt.key_controls.derive, principal, _payload(body), actor
    )
    return _json(minted, status=201, headers={"Cache-Control": "no-store"})


@router.post("/keys/{key_id}/rotate")
async def rotate_key(key_id: str, request: Request) -> Response:
    rt, principal, body, _ = await _authenticate(request)
    overlap = _payload(body).get("overlap_days", 7) if body else 7
    actor = Actor(key_id=principal.key_id, source_ip=request_ip(request))
    minted = await anyio.to_thread.run_sync(
        rt.key_controls.rotate, principal, key_id, overlap, actor
    )
    return _json(minted, status=201, headers={"Cache-Control": "no-store"})


@router.delete("/keys/{key_id}")
async def revoke_key(key_id: str, request: Request) -> Response:
    rt, principal, _, _ = await _authenticate(request)
    actor = Actor(key_id=principal.key_id, source_ip=request_ip(request))
    revoked = await anyio.to_thread.run_sync(rt.key_controls.revoke, principal, key_id, actor)
    return _json(revoked)
