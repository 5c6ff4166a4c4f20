"""``GET /v1/grants/{grant_id}/usage``: a grant's spend against its budgets (admin keys)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from vaultgate.server.api.deps import AdminActor, Rt
from vaultgate.server.budgets.services import UsageService

router = APIRouter(prefix="/v1", tags=["management"])


@router.get("/grants/{grant_id}/usage")
def grant_usage(grant_id: str, rt: Rt, _: AdminActor) -> dict[str, Any]:
    """Per budget of the grant and its ancestors: the current window's requests, tokens in and
    out, USD, limit and remaining; and the grant's own recent windows."""
    return UsageService(rt.engine, rt.grants, rt.clock).usage(grant_id)
