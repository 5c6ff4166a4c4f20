"""One forward: the injected request sent, its answer brought back, its outcome recorded once.

A `Relay` is made for a request once its use is on record and its credential open. Whatever way
the forward ends (an answer read whole, a stream run to its end, a connection refused, a client
that left half way) it ends in `Relay.close`, the one place a proxied request's ``grant:outcome``
is written; a second close is a no-op, so no path can record two outcomes or none.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from vaultgate.server.egress.client import UpstreamResponse
from vaultgate.server.egress.echo import redact_echo
from vaultgate.server.egress.inject import inject
from vaultgate.server.egress.metering import meter_for, settle
from vaultgate.server.egress.pipeline import Authorized, UseRequest
from vaultgate.server.errors import VaultError

if TYPE_CHECKING:
    from vaultgate.server.budgets import UsageMeter
    from vaultgate.server.runtime import Runtime

Headers = list[tuple[str, str]]
Body = bytes | AsyncIterator[bytes] | None

# A small answer of known length is read whole: the streaming machinery costs more than the copy
# (measured), and nothing is lost since the client waits for it anyway. Unknown lengths (chunked,
# SSE) and large bodies still stream.
SMALL_BODY: Final = 64 * 1024


@dataclass(frozen=True, slots=True)
class Answer:
    """The upstream's answer as it goes back: whole (bytes) or as a stream of chunks."""

    status: int
    headers: Headers  # as the upstream sent them, less what the echo redaction took out
    body: bytes | AsyncIterator[bytes]


class Relay:
    def __init__(self, rt: Runtime, use: UseRequest, auth: Authorized) -> None:
        self._rt = rt
        self._use = use
        self._auth = auth
        self._started = time.monotonic()
        self._closed = False

    def close(
        self,
        *,
        status: int,
        bytes_out: int | None = None,
        error: str | None = None,
        meter: UsageMeter | None = None,
    ) -> None:
        """Record the request's outcome; only the first close of a relay counts."""
        if self._closed:
            return
        self._closed = True
        self._rt.pipeline.record_outcome(
            self._use,
            self._auth,
            status=status,
            latency_ms=self._ms(),
            bytes_out=bytes_out,
            error=error,
            usage=meter.usage() if meter is not None else None,
        )

    async def settle(self, meter: UsageMeter, *, status: int, bytes_out: int) -> None:
        """Close with a metered outcome, awaited: the spend is durable before the answer ends
        (egress/metering.py), so the caller's next request is decided on it, on any node."""
        if self._closed:
            return
        self._closed = True
        await settle(
            self._rt.pipeline,
            self._use,
            self._auth,
            meter,
            status=status,
            latency_ms=self._ms(),
            bytes_out=bytes_out,
        )

    def _ms(self) -> int:
        return int((time.monotonic() - self._started) * 1000)

    async def send(self, headers: Headers, query: Headers, body: Body) -> UpstreamResponse:
        """Inject the credential and send; a send that fails closes the relay with its code."""
        rt, use, auth = self._rt, self._use, self._auth
        whole = body if isinstance(body, bytes) else None
        target, out = inject(auth, use.method, use.target, headers, query, whole, now=rt.clock())
        try:
            return await rt.upstream.send(use.method, target, out, body, timeout=rt.timeouts)
        except BaseException as exc:
            self.close(status=0, error=failure_code(exc))
            raise

    async def whole(self, upstream: UpstreamResponse, limit: int) -> Answer:
        """The answer read whole (at most ``limit`` bytes), a ``proxy_only`` echo redacted."""
        content = b""
        try:
            content = await upstream.read(limit)
        except BaseException as exc:
            self.close(status=upstream.status, error=failure_code(exc))
            raise
        finally:
            upstream.close()
        content, headers = redact_echo(self._rt, self._use, self._auth, content, upstream.headers)
        if (meter := meter_for(self._auth, upstream.headers)) is not None:
            meter.feed(content)
            await self.settle(meter, status=upstream.status, bytes_out=len(content))
        else:
            self.close(status=upstream.status, bytes_out=len(content))
        return Answer(upstream.status, headers, content)

    def streamed(self, upstream: UpstreamResponse, on_end: Callable[[], None]) -> Answer:
        """The answer passed on chunk by chunk; ``on_end`` runs once the stream is over."""

        meter = meter_for(self._auth, upstream.headers)
        length = content_length(upstream.headers)

        async def chunks() -> AsyncIterator[bytes]:
            sent = 0
            error: str | None = None
            try:
                async for chunk in upstream.iter_chunks():
                    sent += len(chunk)
                    if meter is not None:
                        meter.feed(chunk)
                        if length is not None and sent >= length:
                            # The last bytes of a declared length wait for the durable spend.
                            await self.settle(meter, status=upstream.status, bytes_out=sent)
                    yield chunk
                if meter is not None:
                    # The chunked end (the last frame) waits for the durable spend.
                    await self.settle(meter, status=upstream.status, bytes_out=sent)
            except VaultError as exc:
                error = exc.code
            except (asyncio.CancelledError, GeneratorExit):
                error = "client_disconnected"  # the stream was closed before its end
                raise
            finally:
                upstream.close()
                on_end()
                self.close(status=upstream.status, bytes_out=sent, error=error, meter=meter)

        return Answer(upstream.status, upstream.headers, chunks())

    async def answer(self, upstream: UpstreamResponse, on_end: Callable[[], None]) -> Answer:
        """Whole when it is small and of known length, streamed otherwise (transparent proxy)."""
        length = content_length(upstream.headers)
        if length is not None and length <= SMALL_BODY:
            return await self.whole(upstream, SMALL_BODY)
        return self.streamed(upstream, on_end)


def failure_code(exc: BaseException) -> str:
    """The outcome code of a forward that did not finish: the error's, or the client's leaving."""
    if isinstance(exc, asyncio.CancelledError):
        return "client_disconnected"
    return getattr(exc, "code", "upstream_error")


def content_length(headers: Headers) -> int | None:
    for name, value in headers:
        if name.lower() == "content-length":
            return int(value) if value.isdigit() else None
    return None
