"""The request path's front door: the SDK protocol and the transparent proxy skip FastAPI.

These routes run on every API call a user makes, so they go straight from the ASGI server to
their handler; FastAPI's router and dependency solving cost more than the rest of the request
(measured with ``make bench``). The handlers are the same functions FastAPI documents in
``/openapi.json``, so there is still one implementation of each route.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from sqlalchemy.exc import DBAPIError
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from vaultgate.server.api import proxy, sdk
from vaultgate.server.api.errors import (
    envelope_response,
    storage_error_response,
    vault_error_response,
)
from vaultgate.server.api.limits import BodyTooLarge, limited_receive, too_large
from vaultgate.server.errors import VaultError

log = logging.getLogger("vaultgate.api")

Handler = Callable[[Request], Awaitable[Response]]

_EXACT: dict[tuple[str, str], Handler] = {
    ("POST", "/sdk/token"): sdk.token,
    ("POST", "/sdk/proxy"): sdk.proxy,
    ("POST", "/sdk/oauth/audit/api-call"): sdk.audit_api_call,
}
DEPRECATED_KEY = sdk.DEPRECATED_KEY


class HotPaths:
    """Pure ASGI middleware: serve the hot routes directly, hand everything else on."""

    def __init__(self, app: ASGIApp, *, body_limit: int) -> None:
        self.app = app
        self.body_limit = body_limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith("/sdk/"):
            send = _flag_deprecated_key(scope, send)
        handler = _route(scope) if scope["type"] == "http" else None
        if handler is None:
            await self.app(scope, receive, send)
            return
        if not _declared_length_ok(scope, self.body_limit):
            await too_large(send, self.body_limit)
            return
        request = Request(scope, limited_receive(receive, self.body_limit))
        try:
            response = await handler(request)
        except BodyTooLarge:
            await too_large(send, self.body_limit)
            return
        except VaultError as exc:
            response = vault_error_response(exc)
        except DBAPIError as exc:
            response = storage_error_response(exc)
        except Exception as exc:  # the envelope, never a traceback, for anything unforeseen
            log.error("unexpected error on %s: %s", scope["path"], type(exc).__name__)
            response = envelope_response(500, "internal_error", "internal error")
        await response(scope, receive, send)


def _route(scope: Scope) -> Handler | None:
    path: str = scope["path"]
    if path.startswith("/proxy/"):
        return proxy.handle
    return _EXACT.get((scope["method"], path))


def _flag_deprecated_key(scope: Scope, send: Send) -> Send:
    """Add ``X-Alter-Key-Deprecated: true`` when the request's key was rotated (sdk.py marks it)."""

    async def flagged(message: Message) -> None:
        if message["type"] == "http.response.start" and scope.get(DEPRECATED_KEY):
            headers = [*message.get("headers", ()), (b"x-alter-key-deprecated", b"true")]
            message = {**message, "headers": headers}
        await send(message)

    return flagged


def _declared_length_ok(scope: Scope, limit: int) -> bool:
    for name, value in scope["headers"]:
        if name == b"content-length":
            return value.isdigit() and int(value) <= limit
    return True
