"""Capping request bodies before any handler buffers them, and refusing what is not served
(pure ASGI)."""

from __future__ import annotations

from typing import Final

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from vaultgate.server.api.errors import error_answer
from vaultgate.server.errors import NotSupported, PayloadTooLarge


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
    answer = error_answer(PayloadTooLarge(f"the request body is larger than {limit} bytes"))
    await send(
        {
            "type": "http.response.start",
            "status": answer.status,
            "headers": [(b"content-type", b"application/json"), *_raw(answer.headers)],
        }
    )
    await send({"type": "http.response.body", "body": answer.body()})


def _raw(headers: dict[str, str]) -> list[tuple[bytes, bytes]]:
    return [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]


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


WEBSOCKET_REFUSAL: Final = "WebSocket upgrades are not supported by the transparent proxy"


async def refuse_websocket(scope: Scope, receive: Receive, send: Send) -> None:
    """A WebSocket upgrade through the transparent proxy: a plain 501 that says so.

    Relaying frames would need the credential injected on the handshake and a second relay
    loop; until then the caller gets an answer it can read instead of a dropped connection.
    """
    message = await receive()
    if message["type"] != "websocket.connect":
        return
    if "websocket.http.response" not in scope.get("extensions", {}):
        await send({"type": "websocket.close", "code": 1003, "reason": WEBSOCKET_REFUSAL})
        return
    answer = error_answer(NotSupported(WEBSOCKET_REFUSAL, code="websocket_not_supported"))
    body = answer.body()
    await send(
        {
            "type": "websocket.http.response.start",
            "status": answer.status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *_raw(answer.headers),
            ],
        }
    )
    await send({"type": "websocket.http.response.body", "body": body})
