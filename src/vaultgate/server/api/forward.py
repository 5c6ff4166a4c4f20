"""Putting the credential on a request and sending it upstream (server-side injection).

Used by ``/sdk/proxy`` (buffered) and the transparent proxy (streamed).
"""

from __future__ import annotations

import asyncio
import base64
import functools
import time
from collections.abc import AsyncIterator, MutableMapping
from dataclasses import replace
from datetime import datetime
from typing import Any, Final
from urllib.parse import parse_qsl, urlencode

from vaultgate.injection.rules import InjectionRuleError, apply_path, apply_rules_to_pairs
from vaultgate.injection.sigv4 import AwsCredentials, detect_region_service, sign_outgoing
from vaultgate.server.egress.client import UpstreamResponse, strip_hop_by_hop
from vaultgate.server.egress.echo import redact_echo
from vaultgate.server.egress.fairness import hold
from vaultgate.server.egress.hygiene import OVERRIDE_HEADERS
from vaultgate.server.egress.metering import meter_for, settle
from vaultgate.server.egress.pipeline import Authorized, UseRequest
from vaultgate.server.egress.urls import Target, normalize_path, parse_target
from vaultgate.server.errors import Unprocessable, VaultError
from vaultgate.server.runtime import Runtime

Headers = list[tuple[str, str]]

# Headers that only concern the vault and never travel on.
_VAULT_HEADERS = (
    "x-api-key",
    "x-vaultgate-target",
    "x-vaultgate-reason",
    "x-vaultgate-caller",
    "host",
)


_CACHED_URL_CHARS: Final = 2048


def target_of(url: str) -> Target:
    """`parse_target` of ``url``; the same URL (a client calling one API) parsed once.

    Parsing is a pure function of the text and costs more than the policy decision. URLs longer
    than `_CACHED_URL_CHARS` are parsed every time, so the cache stays a few megabytes at most.
    """
    if len(url) > _CACHED_URL_CHARS:
        return parse_target(url)
    return _parse_cached(url)


@functools.lru_cache(maxsize=1024)
def _parse_cached(url: str) -> Target:
    return parse_target(url)  # a refused URL raises and is not cached


def with_query(target: Target, params: dict[str, str]) -> Target:
    """``target`` with ``params`` appended to its query (``/sdk/proxy``'s ``query_params``)."""
    if not params:
        return target
    return replace(target, query="&".join(filter(None, [target.query, urlencode(params)])))


async def admit(rt: Runtime, scope: MutableMapping[str, Any], use: UseRequest) -> None:
    """Take the request's place in its grant's in-flight share, or refuse it (audited, 429).

    The place is held on the request's scope until its answer is sent (`HotPaths` lets go).
    """
    grant = await rt.pipeline.grant(use.grant_id)
    if grant is None or grant.app_id != use.principal.app_id:
        return  # `authorize` answers it as a grant that does not exist
    try:
        slot = rt.upstream.inflight.enter(grant.grant_id)
    except VaultError as exc:
        rt.pipeline.refuse(use, grant, exc)
        raise
    hold(scope, slot)


def inject(
    auth: Authorized,
    method: str,
    target: Target,
    headers: Headers,
    extra_query: Headers,
    body: bytes | None,
    *,
    now: datetime,
) -> tuple[Target, Headers]:
    """The target and headers with the credential applied; the caller's own auth removed.

    Policy was decided on the caller's path; a ``path_prefix`` (a key in the URL path) is put in
    front only here, so a glob never has to, and never can, mention the credential.
    """
    # Content-Length stays: a streamed body goes on with the length it was declared with (the
    # upstream client enforces it); a buffered one gets its length from the client.
    out = [
        (lower, v)
        for k, v in strip_hop_by_hop(headers)
        if (lower := k.lower()) not in _VAULT_HEADERS and lower not in OVERRIDE_HEADERS
    ]
    path = normalize_path(target.path)
    if path != target.path:
        target = replace(target, path=path)
    rules, credential = auth.grant.rules, auth.credential
    if rules.sigv4:
        return _sigv4(auth, method, target, out, extra_query, body or b"", now)
    params: Headers = parse_qsl(target.query, keep_blank_values=True) if target.query else []
    before = list(params)
    params.extend(extra_query)
    try:
        out = apply_rules_to_pairs(rules, credential, out, params)
        if rules.path_prefix is not None:
            target = replace(target, path=apply_path(rules, credential, target.path))
    except InjectionRuleError as exc:
        # Rules are checked when stored; this is a credential they cannot render. The message
        # names the rule, never a value.
        raise Unprocessable(exc.message, code="injection_failed", field=exc.field) from None
    if params != before:
        target = replace(target, query=urlencode(params))
    # Lower-case names throughout (the injected ones too), as httpx.Headers used to hand them on.
    return target, [(name.lower(), value) for name, value in out]


def _sigv4(
    auth: Authorized,
    method: str,
    target: Target,
    headers: Headers,
    extra_query: Headers,
    body: bytes,
    now: datetime,
) -> tuple[Target, Headers]:
    if extra_query:
        query = "&".join(filter(None, [target.query, urlencode(extra_query)]))
        target = replace(target, query=query)
    region, service = detect_region_service(target.host)
    aws = auth.grant.aws or {}
    region, service = region or aws.get("region"), service or aws.get("service")
    if not region or not service:
        raise Unprocessable(
            "cannot tell the AWS region and service of this host; set them on "
            "the secret (aws.region, aws.service)",
            field="aws",
        )
    cred = auth.credential
    creds = AwsCredentials(
        cred["access_key_id"], cred["secret_access_key"], cred.get("session_token")
    )
    signed = sign_outgoing(
        method,
        target.url,
        headers,
        body,
        creds,
        host=target.netloc,
        region=region,
        service=service,
        now=now,
    )
    return target, signed


async def forward_buffered(
    rt: Runtime,
    use: UseRequest,
    auth: Authorized,
    headers: Headers,
    query: Headers,
    body: bytes | None,
) -> dict[str, Any]:
    """``/sdk/proxy``: send, read the whole answer (capped), return the protocol's result."""
    started = time.monotonic()
    target, out = inject(auth, use.method, use.target, headers, query, body, now=rt.clock())
    try:
        response = await rt.upstream.send(use.method, target, out, body, timeout=rt.timeouts)
        async with response:
            content = await response.read(rt.settings.max_response_body)
    except BaseException as exc:
        rt.pipeline.record_outcome(
            use, auth, status=0, latency_ms=_ms(started), error=failure_code(exc)
        )
        raise
    content, headers_out = redact_echo(rt, use, auth, content, response.headers)
    status, latency = response.status, _ms(started)
    if (meter := meter_for(auth, response.headers)) is not None:
        meter.feed(content)
        await settle(
            rt.pipeline, use, auth, meter, status=status, latency_ms=latency, bytes_out=len(content)
        )
    else:
        rt.pipeline.record_outcome(
            use, auth, status=status, latency_ms=latency, bytes_out=len(content)
        )
    return {
        "approval_id": None,
        "status_code": response.status,
        "headers": flatten(headers_out),
        "body_b64": base64.b64encode(content).decode(),
        "body_truncated": False,
    }


def failure_code(exc: BaseException) -> str:
    """The outcome code of a forward that did not finish: the error's, or the client's leaving."""
    if isinstance(exc, asyncio.CancelledError):
        return "client_disconnected"
    return getattr(exc, "code", "upstream_error")


def flatten(headers: Headers) -> dict[str, str]:
    """Response headers as the protocol wants them: one string per name."""
    out: dict[str, str] = {}
    for name, value in headers:
        key = name.lower()
        out[key] = f"{out[key]}, {value}" if key in out else value
    return out


async def stream_body(response: UpstreamResponse) -> AsyncIterator[bytes]:
    async for chunk in response.iter_chunks():
        yield chunk


def _ms(started: float) -> int:
    return int((time.monotonic() - started) * 1000)
