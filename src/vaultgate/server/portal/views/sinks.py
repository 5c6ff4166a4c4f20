"""The audit sinks page: each sink's delivery state and lag (read-only; changes via API/CLI)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from vaultgate.server.api.deps import runtime
from vaultgate.server.portal.pages import render
from vaultgate.server.portal.routing import PortalRoute, User, context

router = APIRouter(prefix="/portal", route_class=PortalRoute)


@router.get("/audit/sinks", include_in_schema=False)
def sinks(request: Request, user: User) -> Response:
    items = runtime(request).sinks.list()
    return render("audit_sinks.html", context(request, "audit", title="Audit sinks", sinks=items))
