"""``GET /sdk/approvals/{id}[?wait=N]`` and ``/result``: the official client's polling, signed.

``wait`` holds the answer open until the approval changes, up to 25 s; a larger value is a 422
(the client documents that the server refuses rather than clamps it).
"""

from __future__ import annotations

import anyio.to_thread
from fastapi import APIRouter, Request
from starlette.responses import Response

from vaultgate.server.api.sdk import _authenticate, _json
from vaultgate.server.approvals.services import MAX_WAIT
from vaultgate.server.auth.keys import Principal
from vaultgate.server.errors import Forbidden, Unprocessable

router = APIRouter(prefix="/sdk", tags=["sdk"])


def _wait(raw: str | None) -> int:
    if raw is None or raw == "":
        return 0
    if not raw.isdigit() or int(raw) > MAX_WAIT:
        raise Unprocessable(f"wait: a whole number of seconds from 0 to {MAX_WAIT}", field="wait")
    return int(raw)


def _app_of(principal: Principal) -> str:
    if principal.app_id is None:
        raise Forbidden("approvals are polled with the app key that asked", code="forbidden")
    return principal.app_id


@router.get("/approvals/{approval_id}")
async def approval_status(approval_id: str, request: Request) -> Response:
    rt, principal, _, _ = await _authenticate(request)
    wait = _wait(request.query_params.get("wait"))
    view = await rt.approvals.sdk_status(approval_id, _app_of(principal), wait)
    return _json(view, headers={"Cache-Control": "no-store"})


@router.get("/approvals/{approval_id}/result")
async def approval_result(approval_id: str, request: Request) -> Response:
    rt, principal, _, _ = await _authenticate(request)
    app_id = _app_of(principal)
    result = await anyio.to_thread.run_sync(rt.approvals.result, approval_id, app_id)
    return _json(result, headers={"Cache-Control": "no-store"})
