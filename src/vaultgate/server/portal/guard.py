"""Pure ASGI middleware for everything under /portal: security headers and a form-size cap.

It sits outside the app's JSON body limit so an oversized form is answered with a page a person
can read, before anything reads the body.
"""

from __future__ import annotations

from collections.abc import Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

PREFIX = "/portal"
# Forms carry at most a 64 KiB credential and some metadata; anything near this is not a form.
MAX_FORM_BYTES = 512 * 1024

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"content-security-policy", CSP.encode()),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=()"),
)

TooLargePage = Callable[[int], bytes]


class PortalGuard:
    def __init__(self, app: ASGIApp, *, too_large_page: TooLargePage) -> None:
        self.app = app
        self.too_large_page = too_large_page

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope.get("path", "")
        if scope["type"] != "http" or not (path == PREFIX or path.startswith(PREFIX + "/")):
            await self.app(scope, receive, send)
            return
        static = path.startswith(PREFIX + "/static/")

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = _with_headers(message.get("headers", []), static=static)
            await send(message)

        if _declared_length(scope) > MAX_FORM_BYTES:
            await self._too_large(send_with_headers)
            return
        await self.app(scope, receive, send_with_headers)

    async def _too_large(self, send: Send) -> None:
        body = self.too_large_page(MAX_FORM_BYTES)
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"text/html; charset=utf-8"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


def _declared_length(scope: Scope) -> int:
    for name, value in scope["headers"]:
        if name == b"content-length":
            return int(value) if value.isdigit() else MAX_FORM_BYTES + 1
    return 0


def _with_headers(headers: list[tuple[bytes, bytes]], *, static: bool) -> list[tuple[bytes, bytes]]:
    names = {name for name, _ in SECURITY_HEADERS} | {b"cache-control"}
    kept = [(k, v) for k, v in headers if k.lower() not in names]
    # Pages may show a one-time key or a grant: never cache them. Assets only revalidate.
    cache = b"no-cache" if static else b"no-store"
    return [*kept, *SECURITY_HEADERS, (b"cache-control", cache)]
