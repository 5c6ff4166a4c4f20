"""The Developer Portal: server-rendered pages at /portal over the same services as the API.

It owns sessions, CSRF, page rendering and form parsing; it must never hold its own business
rules, keep a credential after the request, or send a stored value back to the browser.
"""

from __future__ import annotations

from fastapi import FastAPI

from vaultgate.server.portal.guard import PortalGuard
from vaultgate.server.portal.mount import PortalMount
from vaultgate.server.portal.pages import too_large_page

__all__ = ["install"]


def install(app: FastAPI) -> None:
    """Add the portal to ``app`` (whose ``state.runtime`` is set): call it after the app's other
    middleware so the portal's guard is the outermost layer for /portal.

    Its pages load with the first request for one (``mount.py``, ``site.py``)."""
    app.router.routes.append(PortalMount(app))
    app.add_middleware(PortalGuard, too_large_page=too_large_page)
