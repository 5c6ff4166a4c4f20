"""The request path's front door: the SDK protocol and the transparent proxy skip FastAPI.

These routes run on every API call a user makes, so they go straight from the ASGI server to
their handler; FastAPI's router and dependency solving cost more than the rest of the request
(measured with ``make bench``). The handlers are the same functions FastAPI documents in
``/openapi.json``, so there is still one implementation of each route.

`VaultApp` is the FastAPI application with this door in front of its ``__call__``: a request
for a hot route never enters FastAPI's middleware stack (its error, telemetry and body-limit
layers, each a coroutine and a ``send`` wrapper per request, and a check of OpenTelemetry's
environment per request in FastAPI's own telemetry); everything else goes through it as before.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable

from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from vaultgate.server.api import proxy, sdk
from vaultgate.server.api.disconnect import cancel_on_disconnect
from vaultgate.server.api.errors import error_response
from vaultgate.server.api.limits import (
    BodyTooLarge,
    limited_receive,
    refuse_websocket,
    too_large,
)
from vaultgate.server.auth import key_controls
from vaultgate.server.egress.fairness import release_held
from vaultgate.server.egress.hygiene import check_method
from vaultgate.server.errors import VaultError
from vaultgate.server.observability.tracing import Tracing

Handler = Callable[[Request], Awaitable[Response]]

_EXACT: dict[tuple[str, str], Handler] = {
    ("POST", "/sdk/token"): sdk.token,
    ("POST", "/sdk/proxy"): sdk.proxy,
    ("POST", "/sdk/oauth/audit/api-call"): sdk.audit_api_call,
    ("POST", "/sdk/oauth/audit/api-calls"): sdk.audit_api_calls,
}
DEPRECATED_KEY = key_controls.DEPRECATED_KEY


# Handlers that wait on an upstream: a client that leaves cancels them (api/disconnect.py).
_FORWARDING: frozenset[Handler] = frozenset({proxy.handle, sdk.proxy})


class VaultApp(FastAPI):
    """FastAPI, behind `HotPaths` once `front` is set (see the module)."""

    front: HotPaths | None = None

    def put_in_front(self, *, body_limit: int, tracing: Tracing | None = None) -> None:
        self.front = HotPaths(self._stack, body_limit=body_limit, tracing=tracing)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.front is None or scope["type"] == "lifespan":
            await super().__call__(scope, receive, send)
            return
        scope["app"] = self  # what Starlette sets: `Request.app` reads it
        await self.front(scope, receive, send)

    async def _stack(self, scope: Scope, receive: Receive, send: Send) -> None:
        await super().__call__(scope, receive, send)


class HotPaths:
    """Pure ASGI middleware: serve the hot routes directly, hand everything else on."""

    def __init__(self, app: ASGIApp, *, body_limit: int, tracing: Tracing | None = None) -> None:
        self.app = app
        self.body_limit = body_limit
        self.tracing = tracing

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.tracing is not None and scope["type"] == "http":
            await self._traced(self.tracing, scope, receive, send)
            return
        await self._dispatch(scope, receive, send)

    async def _traced(self, tracing: Tracing, scope: Scope, receive: Receive, send: Send) -> None:
        """The request inside its span (observability/tracing.py), its status on the span."""
        with tracing.request(scope["method"], scope["path"], scope["headers"]) as span:

            async def traced_send(message: Message) -> None:
                if message["type"] == "http.response.start":
                    span.set_attribute("http.response.status_code", message["status"])
                await send(message)

            await self._dispatch(scope, receive, traced_send)

    async def _dispatch(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket" and scope["path"].startswith("/proxy/"):
            await refuse_websocket(scope, receive, send)
            return
        if scope["type"] == "http" and scope["path"].startswith(("/sdk/", "/proxy/")):
            send = _flag_deprecated_key(scope, send)
        handler = _route(scope) if scope["type"] == "http" else None
        if handler is None:
            # The fixed allow-list holds on every path; the transparent proxy checks it after
            # authentication instead, so that its refusal is audited for the grant.
            refusal = method_refusal(scope["method"]) if scope["type"] == "http" else None
            if refusal is not None:
                await refusal(scope, receive, send)
                return
            await self.app(scope, receive, send)
            return
        if not _declared_length_ok(scope, self.body_limit):
            await too_large(send, self.body_limit)
            return
        if handler in _FORWARDING:
            serve = functools.partial(self._serve, handler, scope, receive, send)
            await cancel_on_disconnect(serve, scope)
        else:
            await self._serve(handler, scope, receive, send)

    async def _serve(self, handler: Handler, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, limited_receive(receive, self.body_limit))
        try:
            response = await _answer(handler, request)
            if response is None:
                await too_large(send, self.body_limit)
                return
            await response(scope, receive, send)
        finally:
            release_held(scope)  # the grant's in-flight place, once the answer is out


async def _answer(handler: Handler, request: Request) -> Response | None:
    """The handler's response, or the envelope of what it raised (None: the body was too large)."""
    try:
        return await handler(request)
    except BodyTooLarge:
        return None
    except Exception as exc:  # the envelope, never a traceback, for anything unforeseen
        return error_response(exc, method=request.method, path=request.scope["path"])


def _proxied(scope: Scope) -> bool:
    path: str = scope["path"]
    return path.startswith("/proxy/")


def _route(scope: Scope) -> Handler | None:
    if _proxied(scope):
        return proxy.handle
    return _EXACT.get((scope["method"], scope["path"]))


def method_refusal(method: str) -> Response | None:
    """The 405 for a method outside the fixed allow-list, or None when it is on it."""
    try:
        check_method(method)
    except VaultError as exc:
        return error_response(exc)
    return None


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
