"""The HTTP server's own limits: headers must arrive in time, and connections are capped.

uvicorn (0.30 to 0.54 alike) has neither. Its keep-alive timer runs only between requests, so a
client that opens a connection and sends its headers a byte at a time (slowloris) holds it for as
long as it likes; ``limit_concurrency`` answers 503 only once a request's headers are complete,
which such a client never does. So the protocol uvicorn runs is its own, with these additions:

- a header deadline: from the connection's opening, or the end of the previous answer, a
  request's headers must be complete within ``header_timeout`` seconds, however slowly the bytes
  trickle in; otherwise the connection is closed. A request whose headers arrived is never cut
  (its body and answer have their own limits).
- a connection cap: past ``max_connections`` open connections a new one is answered 503 at once
  and closed, so idle or hostile connections cannot use up the process's file descriptors.
- a lost connection cancels the request it was waiting for (`api/disconnect.py`);
- a method the HTTP parser does not know (TRACK) gets the vault's 405, as under h11;
- an answer's head and body leave in one send (`_CorkedTransport`): uvicorn writes them
  separately, two system calls and two TCP segments for every small answer.
"""

from __future__ import annotations

import asyncio
import functools
import math
from collections.abc import MutableMapping
from typing import TYPE_CHECKING, Any, ClassVar, cast

from vaultgate.server.api.disconnect import abandon
from vaultgate.server.errors import MethodNotAllowed, Unavailable
from vaultgate.server.settings import Settings

if TYPE_CHECKING:
    from vaultgate.server.api.errors import ErrorAnswer

try:
    import httptools  # uvicorn's own choice: httptools when it is installed
except ImportError:  # pragma: no cover
    from uvicorn.protocols.http.h11_impl import H11Protocol as _Base

    _HTTPTOOLS = False
else:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol as _Base  # type: ignore[assignment]

    _HTTPTOOLS = True


@functools.cache
def busy() -> bytes:
    """The 503 written to a connection past the cap, in the envelope every error uses."""
    # Imported here: the supervisor imports this module for `server_options` and never answers
    # a request, so it need not load the web framework that api.errors imports.
    from vaultgate.server.api.errors import error_answer

    refusal = Unavailable(
        "the server has too many open connections (VAULTGATE_MAX_CONNECTIONS); retry shortly",
        code="too_many_connections",
        headers={"Retry-After": "1"},
    )
    return _raw_answer(error_answer(refusal), "Service Unavailable")


@functools.cache
def refused_method() -> bytes:
    """The 405 for a method the HTTP parser does not know, as the ASGI path would answer it."""
    from vaultgate.server.api.errors import error_answer
    from vaultgate.server.egress.hygiene import ALLOW_HEADER

    refusal = MethodNotAllowed(
        f"the vault does not serve this method; allowed: {ALLOW_HEADER}",
        headers={"Allow": ALLOW_HEADER},
    )
    return _raw_answer(error_answer(refusal), "Method Not Allowed")


def _raw_answer(answer: ErrorAnswer, reason: str) -> bytes:
    body = answer.body()
    lines = [f"HTTP/1.1 {answer.status} {reason}", "content-type: application/json"]
    lines += [f"{name.lower()}: {value}" for name, value in answer.headers.items()]
    lines += ["connection: close", f"content-length: {len(body)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


class _MethodAwareParser:
    """httptools' parser, but a method it does not know (TRACK...) gets the vault's 405.

    httptools refuses unknown methods itself, and uvicorn answers that with a bare 400; under
    h11 the same request reaches the vault and gets this 405, so the answer is one either way.
    """

    def __init__(self, inner: Any, transport: asyncio.Transport) -> None:
        self._inner = inner
        self._transport = transport

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def feed_data(self, data: bytes) -> None:
        try:
            self._inner.feed_data(data)
        except httptools.HttpParserInvalidMethodError:
            self._transport.write(refused_method())
            self._transport.close()


class _CorkedTransport:
    """The connection's transport, with the writes of one event-loop turn sent as one.

    uvicorn writes an answer's head at ``http.response.start`` and its body at the next message,
    which the vault sends in the same turn; held until the turn ends, they leave together. A
    stream's chunks, sent in later turns, still leave as they come. Everything else is the
    transport's own.
    """

    __slots__ = ("_held", "_loop", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._held: list[bytes] = []

    def write(self, data: bytes) -> None:
        if not self._held:
            self._loop.call_soon(self.flush)
        self._held.append(data)

    def flush(self) -> None:
        held, self._held = self._held, []
        if held and not self._transport.is_closing():
            self._transport.write(held[0] if len(held) == 1 else b"".join(held))

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def write_eof(self) -> None:
        self.flush()
        self._transport.write_eof()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class GuardedHttpProtocol(_Base):
    """uvicorn's HTTP protocol with a header deadline and a connection cap (see the module)."""

    header_timeout: ClassVar[float] = 10.0
    max_connections: ClassVar[int] = 4096
    _deadline: asyncio.TimerHandle | None = None
    _waiting_after: object = None
    _armed_at: float = 0.0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        corked = cast("asyncio.Transport", _CorkedTransport(transport, self.loop))
        super().connection_made(corked)
        if len(self.connections) > self.max_connections:
            transport.write(busy())
            transport.close()
            return
        if _HTTPTOOLS:
            parser = getattr(self, "parser")  # noqa: B009  (httptools only; h11 has none)
            setattr(self, "parser", _MethodAwareParser(parser, transport))  # noqa: B010
        self._arm()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        cycle = self.cycle
        super().connection_lost(exc)
        if cycle is not None and not cycle.response_complete:
            # Its upstream request goes now, not at its timeout. (uvicorn types the scope as a
            # TypedDict; the keys `abandon` uses are the vault's own.)
            abandon(cast("MutableMapping[str, Any]", cycle.scope))

    def _arm(self) -> None:
        # The request whose headers are awaited is the one after the current cycle: when the
        # deadline comes and the cycle is still this one, no new request's headers completed.
        self._waiting_after = self.cycle
        self._armed_at = self.loop.time()
        # One timer per connection, moved on lazily: a busy keep-alive connection re-arms on
        # every answer, and a timer made and cancelled each time cost more than this check.
        if self._deadline is None:
            self._deadline = self.loop.call_later(self.header_timeout, self._expire)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expire(self) -> None:
        self._deadline = None
        if self.cycle is not self._waiting_after:
            return  # a new request's headers completed; its answer re-arms
        left = self._armed_at + self.header_timeout - self.loop.time()
        if left > 0:  # re-armed since this timer was set: wait out the rest
            self._deadline = self.loop.call_later(left, self._expire)
        elif not self.transport.is_closing():
            self.transport.close()


def server_options(settings: Settings) -> dict[str, Any]:
    """uvicorn options that apply ``settings``' header deadline and connection cap.

    The header deadline also ends an idle kept-alive connection (``header_timeout`` after its
    last answer), so uvicorn's own keep-alive timer is set past it: at its default of 5 s it
    closed connections exactly when httpx's pool (5 s expiry, the official client's) would reuse
    them, and a request sent into that close failed as a network error.

    uvicorn rewrites the client's address from ``X-Forwarded-For`` for the hosts in
    ``forwarded_allow_ips``, by default loopback. That would let any local process claim any
    address to an ``ip_allow`` policy, a key's networks and the audit trail; so the proxy
    headers are read only when ``VAULTGATE_TRUSTED_PROXIES`` names proxies, and only from them.
    """
    protocol = type(
        "GuardedHttpProtocol",
        (GuardedHttpProtocol,),
        {"header_timeout": settings.header_timeout, "max_connections": settings.max_connections},
    )
    keep_alive = max(5, math.ceil(settings.header_timeout) + 1)
    proxies = [str(network) for network in settings.trusted_proxies]
    forwarding = {"proxy_headers": True, "forwarded_allow_ips": proxies} if proxies else {}
    return {
        "http": protocol,
        "timeout_keep_alive": keep_alive,
        "proxy_headers": False,
        **forwarding,
    }
