"""The Providers tab: the template catalogue, searchable, with hosts and how the key is sent."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from vaultgate.server.api.deps import runtime
from vaultgate.server.portal.pages import render
from vaultgate.server.portal.routing import PortalRoute, User, context

router = APIRouter(prefix="/portal", route_class=PortalRoute)


@router.get("/providers", include_in_schema=False)
def list_providers(request: Request, user: User, q: str = "") -> Response:
    catalogue = runtime(request).catalogue
    providers = catalogue.search(q) if q else catalogue.all()
    return render(
        "providers.html",
        context(
            request,
            "providers",
            title="Providers",
            q=q,
            providers=[p.to_public() for p in providers],
        ),
    )
