"""The portal's pages, assembled into one router; imported with the first request for a page.

``mount.PortalMount`` loads this module when /portal is first asked for: a worker that only
serves the API never imports the portal's views, its session signing (itsdangerous) or its
password hashing (argon2), about 1.5 MiB of its resident memory (``test_worker_imports``).
"""

from __future__ import annotations

from fastapi import APIRouter, FastAPI, Request
from starlette.responses import Response
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles

from vaultgate.server.portal.pages import STATIC
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


def build(app: FastAPI) -> APIRouter:
    """Every portal address, in the order they match; ``app.state.portal`` set for them."""
    app.state.portal = PortalState(
        codec=SessionCodec(app.state.runtime.session_key),
        throttle=LoginThrottle(app.state.runtime.engine),
    )
    router = APIRouter()
    for module in (auth, secrets, grants, apps, sinks, audit, providers, approvals, oauth):
        router.include_router(module.router)
    router.routes.append(
        Mount("/portal/static", StaticFiles(directory=STATIC), name="portal-static")
    )
    # Last: any other /portal address is the portal's own "not found" page, not a JSON 404.
    router.add_api_route(
        "/portal/{rest:path}", _not_found, methods=["GET"], include_in_schema=False
    )
    return router


async def _not_found(request: Request, rest: str) -> Response:
    return error_page(request, 404, "Page not found", "There is no portal page at this address.")
