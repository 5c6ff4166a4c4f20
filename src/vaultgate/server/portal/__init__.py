"""The Developer Portal: server-rendered pages at /portal over the same services as the API.

It owns sessions, CSRF, page rendering and form parsing; it must never hold its own business
rules, keep a credential after the request, or send a stored value back to the browser.
"""

from __future__ import annotations

from fastapi import APIRouter, FastAPI, Request
from starlette.responses import Response
from starlette.staticfiles import StaticFiles

from vaultgate.server.portal.guard import PortalGuard
from vaultgate.server.portal.pages import STATIC, too_large_page
from vaultgate.server.portal.routing import PortalState, error_page
from vaultgate.server.portal.sessions import SessionCodec
from vaultgate.server.portal.throttle import LoginThrottle
from vaultgate.server.portal.views import (
    approvals,
    apps,
    audit,
    auth,
    grants,
    oauth,
    providers,
    secrets,
    sinks,
)

__all__ = ["install", "router"]

router = APIRouter()
for _module in (auth, secrets, grants, apps, sinks, audit, providers, approvals, oauth):
    router.include_router(_module.router)


def install(app: FastAPI) -> None:
    """Add the portal to ``app`` (whose ``state.runtime`` is set): call it after the app's other
    middleware so the portal's guard is the outermost layer for /portal."""
    app.state.portal = PortalState(
        codec=SessionCodec(app.state.runtime.session_key),
        throttle=LoginThrottle(app.state.runtime.engine),
    )
    app.include_router(router)
    app.mount("/portal/static", StaticFiles(directory=STATIC), name="portal-static")
    # Last: any other /portal address is the portal's own "not found" page, not a JSON 404.
    app.add_api_route("/portal/{rest:path}", _not_found, methods=["GET"], include_in_schema=False)
    app.add_middleware(PortalGuard, too_large_page=too_large_page)


async def _not_found(request: Request, rest: str) -> Response:
    return error_page(request, 404, "Page not found", "There is no portal page at this address.")
