"""The transparent proxy: ``ANY /proxy/{grant_id}/{path}``, streamed both ways (DESIGN 4.2).

Any HTTP client works by pointing its base URL here and using its app key as the bearer token;
the key is removed and the grant's credential injected on the way out.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from vaultgate.server.api.deps import bearer, client_ip, runtime
from vaultgate.server.api.errors import vault_error_response
from vaultgate.server.api.forward import admit, failure_code, inject, target_of
from vaultgate.server.api.held import held_response
from vaultgate.server.api.limits import WEBSOCKET_REFUSAL
from vaultgate.server.approvals.errors import ApprovalRequired
from vaultgate.server.audit.events import new_id
from vaultgate.server.auth.keys import Principal
from vaultgate.server.budgets import UsageMeter
from vaultgate.server.egress.client import UpstreamResponse, capped
from vaultgate.server.egress.echo import redact_echo
from vaultgate.server.egress.fairness import release_held
from vaultgate.server.egress.metering import meter_for, settle
from vaultgate.server.egress.pipeline import Authorized, UseRequest
from vaultgate.server.egress.urls import Target
from vaultgate.server.errors import Forbidden, InvalidInput, NotFound, NotSupported, VaultError
from vaultgate.server.runtime import Runtime
from vaultgate.server.secrets.grants import GrantContext

METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


def _principal(rt: Runtime, headers: dict[str, str]) -> Principal:
    presented = bearer(headers.get("authorization")) or headers.get("x-api-key")
    principal = rt.keys.authenticate(presented)
    if principal.app_id is None:
        raise Forbidden("the proxy takes an app key, not an admin key", code="forbidden")
    return principal


def grant_id_of(path: str) -> str:
    """``/proxy/{grant_id}[/...]`` -> grant_id (routing is done by hand: see hotpath.py)."""
    return path[len("/proxy/") :].split("/", 1)[0]


def _upstream_url(request: Request, headers: dict[str, str], grant: GrantContext) -> str:
    raw_path = request.scope.get("raw_path") or request.scope["path"].encode()
    prefix = f"/proxy/{grant.grant_id}".encode()
    rest = raw_path.decode("latin-1")[len(prefix) :] if raw_path.startswith(prefix) else "/"
    chosen = headers.get("x-vaultgate-target")
    if chosen:
        origin = chosen.rstrip("/")
    else:
        defaults = [h for h in grant.hosts if not h.wildcard]
        if not defaults:
            raise InvalidInput(
                "this grant has only wildcard hosts: name one with X-Vaultgate-Target",
                code="target_required",
            )
        origin = defaults[0].origin_for_default()
    query = request.scope.get("query_string", b"").decode("latin-1")
    return f"{origin}{rest or '/'}" + (f"?{query}" if query else "")


async def handle(request: Request) -> Response:
    try:
        return await _handle(request)
    except VaultError as exc:
        return vault_error_response(exc)


def _header_pairs(request: Request) -> tuple[list[tuple[str, str]], dict[str, str]]:
    """Every header decoded once: in order (to forward) and by name, the first of a repeat.

    Starlette's ``request.headers`` decodes every header again on each lookup; this handler
    makes about a dozen.
    """
    pairs = [
        (name.decode("latin-1"), value.decode("latin-1"))
        for name, value in request.scope["headers"]
    ]
    first: dict[str, str] = {}
    for name, value in pairs:
        first.setdefault(name, value)
    return pairs, first


def _use(
    rt: Runtime,
    request: Request,
    headers: dict[str, str],
    principal: Principal,
    grant_id: str,
    target: Target,
) -> UseRequest:
    forwarded = headers.get("x-forwarded-for")
    return UseRequest(
        principal=principal,
        grant_id=grant_id,
        method=request.method,
        target=target,
        mode="transparent",
        caller=headers.get("x-vaultgate-caller"),
        reason=headers.get("x-vaultgate-reason"),
        client_ip=client_ip(request.scope.get("client"), forwarded, rt.settings.trusted_proxies),
        request_id=headers.get("x-request-id") or new_id(),
        display_url=target.url,
    )


async def _handle(request: Request) -> Response:
    rt = runtime(request)
    pairs, headers = _header_pairs(request)
    principal = _principal(rt, headers)
    if "upgrade" in headers:
        # Served as a WebSocket scope when the ASGI server upgrades (hotpath.py); this is the
        # same answer when it hands the upgrade request over as plain HTTP.
        raise NotSupported(WEBSOCKET_REFUSAL, code="websocket_not_supported")
    if "content-length" in headers and "transfer-encoding" in headers:
        raise InvalidInput(
            "Content-Length together with Transfer-Encoding is refused", code="ambiguous_length"
        )
    grant_id = grant_id_of(request.scope["path"])
    grant = await rt.pipeline.grant(grant_id)
    if grant is None or grant.app_id != principal.app_id:
        raise NotFound("grant not found", code="grant_not_found")
    target = target_of(_upstream_url(request, headers, grant))
    use = _use(rt, request, headers, principal, grant_id, target)
    # A derived key may use the transparent proxy only with the scope proxy mode needs.
    rt.key_controls.enforce_scope(principal, "proxy:execute", use.client_ip)
    await admit(rt, request.scope, use)
    try:
        auth = await rt.pipeline.authorize(use)
    except ApprovalRequired as held:
        body = b"".join([c async for c in capped(request.stream(), rt.settings.approval_max_body)])
        return await held_response(rt, use, held, pairs, [], body or None)
    return await _forward(rt, request, pairs, use, auth)


async def _forward(
    rt: Runtime,
    request: Request,
    pairs: list[tuple[str, str]],
    use: UseRequest,
    auth: Authorized,
) -> Response:
    started = time.monotonic()
    body_stream = capped(request.stream(), rt.settings.max_request_body)
    # HTTP/1.1 frames a body by Content-Length or Transfer-Encoding; without either there is none,
    # whatever the method, and none is invented on the way out.
    has_body = any(name in ("content-length", "transfer-encoding") for name, _ in pairs)
    body: bytes | AsyncIterator[bytes] | None = body_stream if has_body else None
    if auth.grant.rules.sigv4 and has_body:
        body = b"".join([chunk async for chunk in body_stream])  # SigV4 signs the payload hash
    target, headers = inject(
        auth,
        use.method,
        use.target,
        pairs,
        [],
        body if isinstance(body, bytes) else None,
        now=rt.clock(),
    )
    try:
        upstream = await rt.upstream.send(use.method, target, headers, body, timeout=rt.timeouts)
    except (VaultError, asyncio.CancelledError) as exc:
        code = failure_code(exc)
        rt.pipeline.record_outcome(use, auth, status=0, latency_ms=_ms(started), error=code)
        raise

    length = _content_length(upstream.headers)
    if length is not None and length <= SMALL_BODY:
        # A small answer of known length is read whole: the streaming machinery costs more
        # than the copy (measured), and nothing is lost since the client waits for it anyway.
        # Unknown lengths (chunked, SSE) and large bodies still stream.
        return await _buffered(rt, use, auth, upstream, started)
    raw_headers = _raw(upstream.headers, use.request_id)
    meter = meter_for(auth, upstream.headers)

    async def relay() -> AsyncIterator[bytes]:
        sent = 0
        error: str | None = None
        settled = False
        try:
            async for chunk in upstream.iter_chunks():
                sent += len(chunk)
                if meter is not None:
                    meter.feed(chunk)
                    if length is not None and sent >= length:
                        # The last bytes of a declared length wait until the spend is durable.
                        settled = await _settle(rt, use, auth, meter, upstream, started, sent)
                yield chunk
            if meter is not None and not settled:
                # The chunked end (the last frame) waits until the spend is durable.
                settled = await _settle(rt, use, auth, meter, upstream, started, sent)
        except VaultError as exc:
            error = exc.code
        except (asyncio.CancelledError, GeneratorExit):
            error = "client_disconnected"  # the stream was closed before its end
            raise
        finally:
            upstream.close()
            release_held(request.scope)
            if not settled:
                rt.pipeline.record_outcome(
                    use,
                    auth,
                    status=upstream.status,
                    latency_ms=_ms(started),
                    bytes_out=sent,
                    error=error,
                    usage=meter.usage() if meter is not None else None,
                )

    response = StreamingResponse(relay(), status_code=upstream.status)
    response.raw_headers = raw_headers
    return response


SMALL_BODY = 64 * 1024


async def _settle(
    rt: Runtime,
    use: UseRequest,
    auth: Authorized,
    meter: UsageMeter,
    upstream: UpstreamResponse,
    started: float,
    sent: int,
) -> bool:
    status, latency = upstream.status, _ms(started)
    await settle(rt.pipeline, use, auth, meter, status=status, latency_ms=latency, bytes_out=sent)
    return True


async def _buffered(
    rt: Runtime,
    use: UseRequest,
    auth: Authorized,
    upstream: UpstreamResponse,
    started: float,
) -> Response:
    error: str | None = None
    content = b""
    meter = meter_for(auth, upstream.headers)
    try:
        content = await upstream.read(SMALL_BODY)
    except (VaultError, asyncio.CancelledError) as exc:
        error = failure_code(exc)
        raise
    finally:
        upstream.close()
        if meter is None or error is not None:
            rt.pipeline.record_outcome(
                use,
                auth,
                status=upstream.status,
                latency_ms=_ms(started),
                bytes_out=len(content),
                error=error,
            )
    if meter is not None:
        meter.feed(content)
        await _settle(rt, use, auth, meter, upstream, started, len(content))
    content, headers = redact_echo(rt, use, auth, content, upstream.headers)
    response = Response(content, status_code=upstream.status)
    # Content-Length among them, as the upstream sent it (or as the redaction left it).
    response.raw_headers = _raw(headers, use.request_id)
    return response


def _raw(headers: list[tuple[str, str]], request_id: str) -> list[tuple[bytes, bytes]]:
    raw = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers]
    raw.append((b"x-request-id", request_id.encode()))
    return raw


def _content_length(headers: list[tuple[str, str]]) -> int | None:
    for name, value in headers:
        if name.lower() == "content-length":
            return int(value) if value.isdigit() else None
    return None


def _ms(started: float) -> int:
    return int((time.monotonic() - started) * 1000)


routes = [
    Route("/proxy/{grant_id}/{path:path}", handle, methods=METHODS),
    Route("/proxy/{grant_id}", handle, methods=METHODS),
]
