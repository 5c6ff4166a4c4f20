"""A light HTTP/1.1 transport for ``AlterVault``'s calls that read whole answers: to the vault
(token, proxy, reports, admin verbs) and, in ``request()``, to the provider (``Lanes``, one lane
per origin). Keep-alive connections on plain asyncio streams.

Why: in a ``request()`` the client's own CPU was the bottleneck, and most of it was httpcore's
anyio layer (cancel scopes, ``sniffio``, socket attribute look-ups on every read) and two socket
writes per POST (headers, then body). This lane writes each request in one send and keeps no
more machinery than a bounded list of idle connections; ``_http11`` writes and reads the bytes
(it replaced h11 here, whose per-event bookkeeping was the next largest cost). It answers fully
read responses; ``stream()`` keeps httpx's transport.

Failures surface as httpx's exceptions (``ConnectError``, ``ReadTimeout``...), which the client
maps to ``NetworkError``/``TimeoutError`` like any other transport's.

Replay. A kept-alive connection may be closed by the server at any moment (its idle timeout),
and a request written into one that the server closed in that race fails before any byte of
the answer arrives (``Stale``). The request is then sent once more, on a new connection, only
when it is safe to send twice, which ``replay`` decides:
- a vault call carries a ``REPLAY_EXTENSION``, a callable that builds it again: re-signed, with
  a fresh nonce and timestamp, so the vault's replay check never refuses it. The client sets it
  on ``/sdk/token`` and on read-only ``GET`` verbs only: were the first copy processed after all,
  the second one costs an extra "token issued" audit record, and changes nothing. Outcome
  reports (an audit record each), ``/sdk/proxy`` (which calls the provider) and the mutating
  verbs never carry it;
- a provider call is sent again only when its method is safe (``GET``, ``HEAD``, ``OPTIONS``),
  as aiohttp does for a reused connection; a ``POST`` to a provider is never sent twice.
A fresh connection that fails the same way, or any failure after the first byte of the answer,
is never replayed.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable
from typing import Final

import h11
import httpx

from ._http11 import Answer, Closed, ProtocolError, Reply, read_answer, request_bytes

MAX_IDLE: Final = 64
MAX_ORIGINS: Final = 64
READ_SIZE: Final = 65_536
REPLAY_EXTENSION: Final = "vaultgate.replay"
SAFE_METHODS: Final = frozenset({"GET", "HEAD", "OPTIONS"})
_TLS: list[ssl.SSLContext] = []


class Stale(Exception):
    """A reused connection failed before any byte of the answer: closed by the server."""


def replay(request: httpx.Request, *, idempotent: bool) -> httpx.Request | None:
    """The request to send once more after ``Stale``, or None when it must not be resent.

    ``idempotent`` (provider lanes): the same request when its method is safe.
    """
    rebuild: Callable[[], httpx.Request] | None = request.extensions.get(REPLAY_EXTENSION)
    if rebuild is not None:
        return rebuild()
    if idempotent and request.method in SAFE_METHODS:
        return request
    return None


def tls_context() -> ssl.SSLContext:
    """httpx's own verification (its CA bundle), built once: loading it costs milliseconds."""
    if not _TLS:
        _TLS.append(httpx.create_ssl_context())
    return _TLS[0]


class _Connection:
    __slots__ = ("kept", "reader", "reused", "writer")

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.reused = False
        self.kept = False

    def usable(self) -> bool:
        """Idle and not closed by the vault meanwhile (its keep-alive timeout)."""
        return not self.reader.at_eof() and not self.writer.is_closing()

    async def exchange(self, request: httpx.Request) -> Answer:
        try:
            body = request.content
        except httpx.RequestNotRead:  # a request rebuilt by the injection keeps a stream
            body = await request.aread()
        head = request.headers.raw
        self.writer.write(request_bytes(request.method, request.url.raw_path, head, body))
        try:
            await self.writer.drain()
        except (BrokenPipeError, ConnectionResetError):
            raise Stale from None
        reader = read_answer(request.method)
        next(reader)
        started = False
        try:
            while True:
                try:
                    data = await self.reader.read(READ_SIZE)
                except ConnectionResetError:
                    if not started:
                        raise Stale from None
                    raise
                if not data and not started:
                    raise Stale
                started = True
                reader.send(data)
        except StopIteration as done:
            answer: Answer = done.value
        self.kept = answer.reusable
        return answer

    def close(self) -> None:
        self.writer.close()


def _closed_unanswered(request: httpx.Request) -> httpx.RemoteProtocolError:
    return httpx.RemoteProtocolError(
        "the server closed the connection without answering", request=request
    )


class VaultLane(httpx.AsyncBaseTransport):
    """Requests to one origin (``http://`` or ``https://``, verified as httpx verifies).

    ``idempotent_replay``: a provider's origin, where a safe method may be replayed (see above).
    """

    def __init__(self, base_url: str, *, idempotent_replay: bool = False) -> None:
        url = httpx.URL(base_url)
        self._host = url.host
        self._tls = url.scheme == "https"
        self._port = url.port or (443 if self._tls else 80)
        self._ssl: ssl.SSLContext | None = tls_context() if self._tls else None
        self._idle: list[_Connection] = []
        self._idempotent_replay = idempotent_replay

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        answer, sent = await self._answered(request)
        return answer.response(sent)

    async def reply(self, request: httpx.Request) -> Reply | httpx.Response:
        """The answer as ``Answer.reply`` gives it (a vault answer read as JSON)."""
        answer, sent = await self._answered(request)
        return answer.reply(sent)

    async def answer(self, request: httpx.Request) -> Answer:
        """The answer without an ``httpx.Response`` built for it, for a caller that reads only
        its status and body (a report). Fails as ``handle_async_request`` fails."""
        answer, _ = await self._answered(request)
        return answer

    async def _answered(self, request: httpx.Request) -> tuple[Answer, httpx.Request]:
        """The answer, and the request it answers (``request``, or the one replayed)."""
        timeout = request.extensions.get("timeout", {})
        connection = self._take() or await self._open(request, timeout.get("connect"))
        try:
            return await self._exchange(connection, request, timeout), request
        except Stale:
            again = replay(request, idempotent=self._idempotent_replay)
            if not connection.reused or again is None:
                raise _closed_unanswered(request) from None
        # Found closed before any byte of the answer: once more, on a new connection.
        connection = await self._open(again, timeout.get("connect"))
        try:
            return await self._exchange(connection, again, timeout), again
        except Stale:
            raise _closed_unanswered(again) from None

    async def _exchange(
        self, connection: _Connection, request: httpx.Request, timeouts: dict[str, float | None]
    ) -> Answer:
        try:
            # asyncio.timeout, not wait_for: wait_for runs the exchange as a task of its own,
            # about 5% of a whole request()'s CPU (py-spy, bench row (e) at c=1).
            async with asyncio.timeout(timeouts.get("read")):
                answer = await connection.exchange(request)
        except TimeoutError:
            connection.close()
            raise httpx.ReadTimeout("timed out waiting for the answer", request=request) from None
        except asyncio.CancelledError:
            # The caller gave up mid-exchange (``await_approval``'s deadline): the connection
            # is out of step, and closing it here keeps it from being collected unclosed.
            connection.close()
            raise
        except Stale:
            connection.close()
            raise
        except Closed:
            connection.close()
            message = "the server closed the connection mid-answer"
            raise httpx.RemoteProtocolError(message, request=request) from None
        except ProtocolError as exc:
            connection.close()
            raise httpx.RemoteProtocolError(str(exc), request=request) from None
        except h11.LocalProtocolError as exc:
            connection.close()
            raise httpx.LocalProtocolError(str(exc), request=request) from None
        except (OSError, asyncio.IncompleteReadError) as exc:
            connection.close()
            message = f"the connection failed: {type(exc).__name__}"
            raise httpx.ReadError(message, request=request) from None
        if connection.kept and len(self._idle) < MAX_IDLE:
            connection.reused = True
            self._idle.append(connection)
        else:
            connection.close()
        return answer

    def _take(self) -> _Connection | None:
        while self._idle:
            connection = self._idle.pop()
            if connection.usable():
                return connection
            connection.close()
        return None

    async def _open(self, request: httpx.Request, seconds: float | None) -> _Connection:
        server_name = self._host if self._tls else None
        opening = asyncio.open_connection(
            self._host, self._port, ssl=self._ssl, server_hostname=server_name
        )
        try:
            reader, writer = await asyncio.wait_for(opening, seconds)
        except TimeoutError:
            raise httpx.ConnectTimeout(
                "timed out connecting to the vault", request=request
            ) from None
        except OSError as exc:
            message = f"could not connect to the vault: {type(exc).__name__}"
            raise httpx.ConnectError(message, request=request) from None
        return _Connection(reader, writer)

    async def aclose(self) -> None:
        idle, self._idle = self._idle, []
        for connection in idle:
            connection.close()


class Lanes(httpx.AsyncBaseTransport):
    """A lane per origin, for ``request()``'s provider calls (few origins, many calls each)."""

    def __init__(self) -> None:
        self._lanes: dict[tuple[str, str, int | None], VaultLane] = {}

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        key = (url.scheme, url.host, url.port)
        lane = self._lanes.get(key)
        if lane is None:
            if len(self._lanes) >= MAX_ORIGINS:
                await self._lanes.pop(next(iter(self._lanes))).aclose()
            origin = f"{url.scheme}://{url.netloc.decode('ascii')}"
            lane = self._lanes[key] = VaultLane(origin, idempotent_replay=True)
        return await lane.handle_async_request(request)

    async def aclose(self) -> None:
        lanes, self._lanes = self._lanes, {}
        for lane in lanes.values():
            await lane.aclose()
