"""The portal's place in the app's routes, holding it until its first page is asked for.

`PortalMount` stands where the portal's routes stood, after the API's: it matches every HTTP
address at or under /portal (no API route lives there) and hands the request to the portal's
own router, which matches, redirects a missing slash, refuses a wrong method or answers "not
found" exactly as the app's router did when the portal's routes were in it. That router is
built, and the portal's modules imported, on the first such request (``site.py``).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, FastAPI
from starlette._utils import get_route_path  # the path Starlette's own routes match against
from starlette.datastructures import URLPath
from starlette.routing import BaseRoute, Match
from starlette.types import Receive, Scope, Send

from vaultgate.server.portal.guard import PREFIX


class PortalMount(BaseRoute):
    def __init__(self, app: FastAPI) -> None:
        self._app = app
        self._router: APIRouter | None = None

    def router(self) -> APIRouter:
        if self._router is None:
            # Imported here: this is the import the module exists to put off.
            from vaultgate.server.portal import site

            self._router = site.build(self._app)
        return self._router

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if scope["type"] == "http":
            path = get_route_path(scope)
            if path == PREFIX or path.startswith(PREFIX + "/"):
                return Match.FULL, {}
        return Match.NONE, {}

    def url_path_for(self, name: str, /, **path_params: Any) -> URLPath:
        return self.router().url_path_for(name, **path_params)

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.router()(scope, receive, send)
