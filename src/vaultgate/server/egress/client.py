"""The upstream client: one long-lived aiohttp session that only reaches vetted addresses.

Usage, with the response always closed so its connection is released (or dropped mid-stream)::

    response = await client.send("POST", target, headers, body, timeout=UpstreamTimeouts())
    try:
        async for chunk in response.iter_chunks():
            ...
    finally:
        response.close()

Error messages name the origin at most: never the request headers, the query or the body, which
may carry the injected credential. Transport exceptions are not chained for the same reason.
"""

from __future__ import annotations

import asyncio
import re
import ssl
from collections.abc import AsyncIterable, AsyncIterator, Iterable
from dataclasses import dataclass
from types import TracebackType
from typing import Final

import aiohttp
from multidict import CIMultiDict
from yarl import URL

from vaultgate.server.egress.fairness import InflightLimit
from vaultgate.server.egress.guard import AddressGuard, VettingResolver
from vaultgate.server.egress.hygiene import check_method
from vaultgate.server.egress.sockets import upstream_socket
from vaultgate.server.egress.urls import Target
from vaultgate.server.errors import (
    BadGateway,
    GatewayTimeout,
    InvalidInput,
    PayloadTooLarge,
    VaultError,
)
from vaultgate.server.observability import tracing
from vaultgate.server.settings import Settings

Headers = list[tuple[str, str]]
Body = bytes | AsyncIterable[bytes] | None

HOP_BY_HOP: Final = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)
# aiohttp would otherwise add these; a proxy must not invent an Accept-Encoding the caller never
# sent (with decompression off the caller would get a body it cannot read) or a User-Agent.
_SKIP_AUTO_HEADERS: Final = CIMultiDict(
    (name, None) for name in ("Accept", "Accept-Encoding", "Content-Type", "User-Agent")
)


class _ForwardedRequest(aiohttp.ClientRequest):
    """A request that carries the caller's headers and none that aiohttp would add.

    Given ``skip_auto_headers``, aiohttp builds a sorted multidict of them and copies the
    request's headers for every request (about 5% of a proxied request's CPU); skipping every
    header it would add, a forwarded request only needs the one set, built once above (aiohttp
    reads it, never changes it).
    """

    def update_auto_headers(self, skip_auto_headers: Iterable[str] | None) -> None:
        self._skip_auto_headers = _SKIP_AUTO_HEADERS


_TOKEN_RE: Final = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_FORBIDDEN_VALUE_CHARS: Final = frozenset("\r\n\x00")
# A fixed body larger than this goes out in slices under its own Content-Length: aiohttp warns
# (ResourceWarning) on a larger one given whole, and slices keep the socket's backpressure
# instead of one copy of the whole body queued in the transport.
_WHOLE_BODY: Final = 1 << 20
_SLICE: Final = 256 * 1024


@dataclass(frozen=True, slots=True)
class UpstreamTimeouts:
    """Seconds. ``connect`` covers waiting for a pooled connection and dialling one;
    ``first_byte`` runs from sending the request (its body included) to the response headers, so
    a model thinking before it answers gets its own budget; ``read`` is the longest silence
    between body chunks after that; ``total`` caps the whole exchange including a streamed body,
    so it is off by default."""

    connect: float = 10.0
    read: float = 300.0
    first_byte: float = 300.0
    total: float | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> UpstreamTimeouts:
        return cls(
            connect=settings.connect_timeout,
            read=settings.read_timeout,
            first_byte=settings.first_byte_timeout,
        )

    def to_aiohttp(self) -> aiohttp.ClientTimeout:
        # No sock_read: the header wait and the body's idle gaps have separate limits, applied
        # by `UpstreamClient.send` and `UpstreamResponse.iter_chunks`.
        return aiohttp.ClientTimeout(
            total=self.total, connect=self.connect, sock_connect=self.connect, sock_read=None
        )


def strip_hop_by_hop(headers: Iterable[tuple[str, str]]) -> Headers:
    """``headers`` without the hop-by-hop ones, including any that ``Connection`` names."""
    pairs = list(headers)
    named = {
        token.strip().lower()
        for name, value in pairs
        if name.lower() == "connection"
        for token in value.split(",")
    }
    return [(n, v) for n, v in pairs if n.lower() not in HOP_BY_HOP and n.lower() not in named]


async def _slices(body: bytes) -> AsyncIterator[memoryview]:
    view = memoryview(body)
    for start in range(0, len(view), _SLICE):
        yield view[start : start + _SLICE]


async def capped(body: AsyncIterable[bytes], limit: int) -> AsyncIterator[bytes]:
    """``body`` unchanged, or ``PayloadTooLarge`` (413) once more than ``limit`` bytes came."""
    total = 0
    async for chunk in body:
        total += len(chunk)
        if total > limit:
            raise PayloadTooLarge(f"the request body is larger than {limit} bytes")
        yield chunk


class _BodySource:
    """Feeds a streamed body to aiohttp and remembers why it stopped, if it failed.

    aiohttp wraps a failing body in its own connection error; the caller's own error (the size
    cap, a client that went away) is what the caller should get back.
    """

    def __init__(self, body: AsyncIterable[bytes], length: int | None) -> None:
        self._body = body
        self._length = length
        self.error: BaseException | None = None

    async def chunks(self) -> AsyncIterator[bytes]:
        sent = 0
        try:
            async for chunk in self._body:
                sent += len(chunk)
                if self._length is not None and sent > self._length:
                    raise _length_mismatch()
                yield chunk
            if self._length is not None and sent != self._length:
                raise _length_mismatch()
        except Exception as exc:
            self.error = exc
            raise


def _length_mismatch() -> InvalidInput:
    return InvalidInput(
        "the request body does not match its Content-Length", code="invalid_body", field="body"
    )


def _outgoing_headers(
    target: Target, headers: Iterable[tuple[str, str]], streaming: bool
) -> Headers:
    kept: Headers = [("Host", target.netloc)]
    for name, value in strip_hop_by_hop(headers):
        if not _TOKEN_RE.fullmatch(name):
            raise InvalidInput("a request header has an invalid name", code="invalid_header")
        if any(c in _FORBIDDEN_VALUE_CHARS for c in value):
            raise InvalidInput(
                f"the value of request header {name} contains CR, LF or NUL", code="invalid_header"
            )
        lower = name.lower()
        # A fixed body gets its length from aiohttp; a stream keeps a declared length, enforced.
        if lower == "host" or (lower == "content-length" and not streaming):
            continue
        kept.append((name, value))
    return kept


def _declared_length(headers: Headers) -> int | None:
    values = {v.strip() for n, v in headers if n.lower() == "content-length"}
    if not values:
        return None
    if len(values) > 1 or not all(v.isdigit() and v.isascii() for v in values):
        raise InvalidInput("the request has an invalid Content-Length", code="invalid_header")
    return int(values.pop())


@dataclass(frozen=True, slots=True)
class PoolUse:
    in_use: int
    idle: int
    waiting: int
    limit: int


class UpstreamClient:
    """Owns the one aiohttp session every forwarded request goes through.

    ``start()`` at server start-up and ``close()`` at shutdown; ``ssl_context`` defaults to the
    system trust store.
    """

    def __init__(
        self,
        guard: AddressGuard,
        *,
        limit: int = 256,
        limit_per_host: int = 32,
        inflight_per_grant: int = 64,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self._guard = guard
        self._limit = limit
        self._limit_per_host = limit_per_host
        self._ssl: ssl.SSLContext | bool = ssl_context if ssl_context is not None else True
        self._session: aiohttp.ClientSession | None = None
        self.inflight = InflightLimit(inflight_per_grant)

    @classmethod
    def from_settings(cls, guard: AddressGuard, settings: Settings) -> UpstreamClient:
        return cls(
            guard,
            limit=settings.upstream_connections,
            limit_per_host=settings.upstream_connections_per_host,
            inflight_per_grant=settings.max_inflight_per_grant,
        )

    async def start(self) -> None:
        if self._session is not None:
            return
        connector = aiohttp.TCPConnector(
            resolver=VettingResolver(self._guard),
            limit=self._limit,
            # Per host (and port): an upstream that stops answering holds at most this many
            # connections, and every other upstream keeps the rest of the pool.
            limit_per_host=self._limit_per_host,
            use_dns_cache=False,  # every new connection re-resolves and re-vets
            ssl=self._ssl,
            # An answer sent before a reset is read rather than lost to the failed write.
            socket_factory=upstream_socket,
        )
        self._session = aiohttp.ClientSession(
            request_class=_ForwardedRequest,
            connector=connector,
            trust_env=False,  # no HTTP(S)_PROXY or .netrc from the environment
            auto_decompress=False,
            cookie_jar=aiohttp.DummyCookieJar(),
        )

    async def close(self) -> None:
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()

    def pool_use(self) -> PoolUse:
        """The connection pool's use now, for ``/metrics``.

        aiohttp keeps no public statistics; these are the connector's own collections (the
        connections handed out, the idle ones kept alive, the requests waiting for a place),
        only read, and read as empty should a later aiohttp rename them.
        """
        connector = self._session.connector if self._session is not None else None
        acquired = getattr(connector, "_acquired", ())
        idle = getattr(connector, "_conns", {})
        waiters = getattr(connector, "_waiters", {})
        return PoolUse(
            in_use=len(acquired),
            idle=sum(len(q) for q in list(idle.values())),
            waiting=sum(len(w) for w in list(waiters.values())),
            limit=self._limit,
        )

    async def __aenter__(self) -> UpstreamClient:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def send(
        self,
        method: str,
        target: Target,
        headers: Iterable[tuple[str, str]],
        body: Body = None,
        *,
        # Phase limits (connect, idle read, total), not one deadline asyncio.timeout could express.
        timeout: UpstreamTimeouts,  # noqa: ASYNC109
    ) -> UpstreamResponse:
        """Forward one request; redirects come back as they are, never followed."""
        if self._session is None:
            raise RuntimeError("UpstreamClient.start() was not called")
        if not _TOKEN_RE.fullmatch(method):
            raise InvalidInput("the request method is not valid", code="invalid_method")
        check_method(method)  # the pipeline refused it already; this is the last line
        if target.is_ip:
            # aiohttp does not consult the resolver for IP literals: vet them here.
            await self._guard.resolve_and_vet(target.host, target.port)
        streaming = body is not None and not isinstance(body, bytes)
        out_headers = _outgoing_headers(target, headers, streaming)
        source: _BodySource | None = None
        data: bytes | AsyncIterator[bytes] | AsyncIterator[memoryview] | None = None
        if isinstance(body, bytes) and len(body) > _WHOLE_BODY:
            out_headers.append(("Content-Length", str(len(body))))
            data = _slices(body)
        elif isinstance(body, bytes):
            data = body
        elif body is not None:
            source = _BodySource(body, _declared_length(out_headers))
            data = source.chunks()
        try:
            with tracing.span("vaultgate.upstream", **_span_attributes(method, target)) as sp:
                tracing.outgoing(out_headers)
                async with asyncio.timeout(timeout.first_byte):
                    raw = await self._session.request(
                        method,
                        URL(target.url, encoded=True),
                        headers=CIMultiDict(out_headers),
                        data=data,
                        allow_redirects=False,
                        timeout=timeout.to_aiohttp(),
                    )
                if sp is not None:
                    sp.set_attribute("http.response.status_code", raw.status)
        except VaultError:
            raise  # the guard refused the destination, from inside the resolver
        except (TimeoutError, aiohttp.ClientError, OSError, ValueError) as exc:
            if source is not None and source.error is not None:
                raise source.error from None
            raise _transport_error(exc, target) from None
        if source is not None and source.error is not None:
            raw.close()
            raise source.error
        return UpstreamResponse(raw, target, timeout.read)


def _span_attributes(method: str, target: Target) -> dict[str, str | int]:
    # The origin only: an upstream path or query may carry an injected value.
    return {
        "http.request.method": method,
        "server.address": target.host,
        "server.port": target.port,
    }


def _transport_error(exc: BaseException, target: Target) -> VaultError:
    if isinstance(exc, TimeoutError):
        return GatewayTimeout(f"the upstream {target.origin} did not answer in time")
    return BadGateway(f"the upstream {target.origin} could not be reached", code="upstream_error")


class UpstreamResponse:
    """An upstream answer whose body has not been read yet; always `close()` it."""

    def __init__(self, raw: aiohttp.ClientResponse, target: Target, idle: float) -> None:
        self._raw = raw
        self._target = target
        self._idle = idle
        self.status: int = raw.status
        self.reason: str | None = raw.reason
        # Raw pairs keep repeated headers (Set-Cookie) and their order. The body is passed through
        # byte for byte (no decompression), so Content-Length and Content-Encoding stay true.
        self.headers: Headers = strip_hop_by_hop(
            (name.decode("latin-1"), value.decode("latin-1")) for name, value in raw.raw_headers
        )

    def __repr__(self) -> str:
        return f"UpstreamResponse(status={self.status}, origin={self._target.origin!r})"

    async def iter_chunks(self) -> AsyncIterator[bytes]:
        """Body bytes as they arrive (an SSE event is passed on without waiting for the next)."""
        content = self._raw.content
        try:
            while True:
                async with asyncio.timeout(self._idle):  # the idle read limit, per gap
                    chunk = await content.readany()
                if not chunk:
                    return
                yield chunk
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            self.close()
            raise _transport_error(exc, self._target) from None

    async def read(self, limit: int) -> bytes:
        """The whole body, or ``PayloadTooLarge`` once it grows past ``limit`` bytes."""
        parts: list[bytes] = []
        size = 0
        async for chunk in self.iter_chunks():
            size += len(chunk)
            if size > limit:
                self.close()
                raise PayloadTooLarge(
                    f"the upstream response is larger than {limit} bytes",
                    code="upstream_body_too_large",
                )
            parts.append(chunk)
        return b"".join(parts)

    def close(self) -> None:
        """Return the connection to the pool if the body was read to its end, else drop it."""
        if self._raw.content.at_eof():
            self._raw.release()
        else:
            self._raw.close()

    async def __aenter__(self) -> UpstreamResponse:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
