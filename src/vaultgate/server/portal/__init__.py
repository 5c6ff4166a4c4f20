"""The Developer Portal: server-rendered pages at /portal over the same services as the API.

It owns sessions, CSRF, page rendering and form parsing; it must never hold its own business
rules, keep a credential after the request, or send a stored value back to the browser.
"""

from __future__ import annotations

from fastapi import APIRouter, FastAPI
from starlette.staticfiles import StaticFiles

from vaultgate.server.portal.guard import PortalGuard
from vaultgate.server.portal.pages import STATIC, too_large_page
from vaultgate.server.portal.routing import PortalState
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
)

__all__ = ["install", "router"]

router = APIRouter()
for _module in (auth, secrets, grants, apps, audit, providers, approvals, oauth):
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
    app.add_middleware(PortalGuard, too_large_page=too_large_page)
