"""The HTTP server's own limits: headers must arrive in time, and connections are capped.

uvicorn (0.30 to 0.54 alike) has neither. Its keep-alive timer runs only between requests, so a
client that opens a connection and sends its headers a byte at a time (slowloris) holds it for as
long as it likes; ``limit_concurrency`` answers 503 only once a request's headers are complete,
which such a client never does. So the protocol uvicorn runs is its own, with two additions:

- a header deadline: from the connection's opening, or the end of the previous answer, a
  request's headers must be complete within ``header_timeout`` seconds, however slowly the bytes
  trickle in; otherwise the connection is closed. A request whose headers arrived is never cut
  (its body and answer have their own limits).
- a connection cap: past ``max_connections`` open connections a new one is answered 503 at once
  and closed, so idle or hostile connections cannot use up the process's file descriptors.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any, ClassVar, Final

from vaultgate.server.settings import Settings

try:
    import httptools  # noqa: F401  (uvicorn's own choice: httptools when it is installed)
except ImportError:  # pragma: no cover
    from uvicorn.protocols.http.h11_impl import H11Protocol as _Base
else:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol as _Base  # type: ignore[assignment]

_BUSY_BODY: Final = json.dumps(
    {
        "detail": {
            "error": "too_many_connections",
            "message": "the server has too many open connections (VAULTGATE_MAX_CONNECTIONS); "
            "retry shortly",
        }
    }
).encode()
BUSY: Final = (
    b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n"
    b"retry-after: 1\r\nconnection: close\r\nx-vaultgate-error: too_many_connections\r\n"
    b"content-length: " + str(len(_BUSY_BODY)).encode() + b"\r\n\r\n" + _BUSY_BODY
)


class GuardedHttpProtocol(_Base):
    """uvicorn's HTTP protocol with a header deadline and a connection cap (see the module)."""

    header_timeout: ClassVar[float] = 10.0
    max_connections: ClassVar[int] = 4096
    _deadline: asyncio.TimerHandle | None = None
    _waiting_after: object = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.max_connections:
            transport.write(BUSY)
            transport.close()
            return
        self._arm()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        self._disarm()
        # The request whose headers are awaited is the one after the current cycle: when the
        # deadline comes and the cycle is still this one, no new request's headers completed.
        self._waiting_after = self.cycle
        self._deadline = self.loop.call_later(self.header_timeout, self._expire)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expire(self) -> None:
        self._deadline = None
        if self.cycle is self._waiting_after and not self.transport.is_closing():
            self.transport.close()


def server_options(settings: Settings) -> dict[str, Any]:
    """uvicorn options that apply ``settings``' header deadline and connection cap."""
    protocol = type(
        "GuardedHttpProtocol",
        (GuardedHttpProtocol,),
        {"header_timeout": settings.header_timeout, "max_connections": settings.max_connections},
    )
    return {"http": protocol}
