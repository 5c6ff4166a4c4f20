"""Capping request bodies before any handler buffers them (pure ASGI)."""

from __future__ import annotations

import json

from starlette.types import ASGIApp, Message, Receive, Scope, Send


class BodyTooLarge(Exception):
    """Raised from ``receive`` once a body passes its limit."""


def limited_receive(receive: Receive, limit: int) -> Receive:
    """``receive`` that raises `BodyTooLarge` once more than ``limit`` body bytes arrived."""
    received = 0

    async def capped() -> Message:
        nonlocal received
        message = await receive()
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > limit:
                raise BodyTooLarge
        return message

    return capped


async def too_large(send: Send, limit: int) -> None:
    body = json.dumps(
        {
            "detail": {
                "error": "body_too_large",
                "message": f"the request body is larger than {limit} bytes",
            }
        }
    )
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [(b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": body.encode()})


class BodyLimit:
    def __init__(
        self, app: ASGIApp, *, default_limit: int, large_limit: int, large_prefixes: tuple[str, ...]
    ) -> None:
        self.app = app
        self.default_limit = default_limit
        self.large_limit = large_limit
        self.large_prefixes = large_prefixes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        limit = self.large_limit if path.startswith(self.large_prefixes) else self.default_limit
        for name, value in scope["headers"]:
            if name == b"content-length" and (not value.isdigit() or int(value) > limit):
                await too_large(send, limit)
                return
        try:
            await self.app(scope, limited_receive(receive, limit), send)
        except BodyTooLarge:
            await too_large(send, limit)
