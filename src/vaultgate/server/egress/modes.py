"""The request path, once per mode: what a handler calls after it has parsed the request.

Each entry reads as the story every use of a credential follows: the caller is authenticated
(by the handler, which knows how its protocol presents keys), the grant's state is loaded once,
the request takes its grant's in-flight place, the pipeline decides, vets the destination,
records the use and opens the secret (`Pipeline.authorize`), and then the credential is injected
and forwarded and the answer streamed back through a `Relay` whose close records the outcome.
Retrieve mode stops after the secret is opened: the SDK calls the upstream itself.
"""

from __future__ import annotations

import base64
import functools
import time
from collections.abc import AsyncIterator, MutableMapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import urlencode

from vaultgate.injection.rules import InjectionRuleError
from vaultgate.injection.wire import to_wire
from vaultgate.server.approvals.errors import ApprovalRequired
from vaultgate.server.approvals.models import HeldRequest, kept_headers
from vaultgate.server.auth.key_controls import DEPRECATED_KEY
from vaultgate.server.auth.keys import Principal
from vaultgate.server.egress.client import capped
from vaultgate.server.egress.fairness import hold, release_held
from vaultgate.server.egress.pipeline import Authorized, UseRequest
from vaultgate.server.egress.relay import Answer, Relay
from vaultgate.server.egress.urls import Target, parse_target
from vaultgate.server.errors import InvalidInput, NotFound, PayloadTooLarge, VaultError
from vaultgate.server.secrets.grants import GrantContext

if TYPE_CHECKING:
    from vaultgate.server.runtime import Runtime

Headers = list[tuple[str, str]]
Scope = MutableMapping[str, Any]


@dataclass(frozen=True, slots=True)
class Held:
    """A call that waits for people: the protocol's ``PendingApproval``, answered 202."""

    pending: dict[str, Any]
    request_id: str


@dataclass(frozen=True, slots=True)
class ProxyCall:
    """A transparent-proxy request as its handler parsed it (api/proxy.py)."""

    principal: Principal
    grant_id: str
    method: str
    rest: str  # the raw path after /proxy/{grant_id}, and the raw query
    query: str
    pairs: Headers  # every header, in order
    headers: dict[str, str]  # the first of each name
    client_ip: str | None
    request_id: str
    body: AsyncIterator[bytes]


async def transparent(rt: Runtime, scope: Scope, call: ProxyCall) -> Answer | Held:
    """``ANY /proxy/{grant_id}/...``: the request forwarded as it came, the answer streamed."""
    grant = await own_grant(rt, call.principal, call.grant_id)
    target = target_of(_upstream_url(call, grant))
    use = UseRequest(
        principal=call.principal,
        grant_id=call.grant_id,
        method=call.method,
        target=target,
        mode="transparent",
        caller=call.headers.get("x-vaultgate-caller"),
        reason=call.headers.get("x-vaultgate-reason"),
        client_ip=call.client_ip,
        request_id=call.request_id,
        display_url=target.url,
    )
    # A derived key may use the transparent proxy only with the scope proxy mode needs.
    if await rt.key_controls.enforce_scope(call.principal, "proxy:execute", use.client_ip):
        scope[DEPRECATED_KEY] = True  # a rotated key in its grace period: flagged on the answer
    admit(rt, scope, use, grant)
    try:
        auth = await rt.pipeline.authorize(use, grant=grant)
    except ApprovalRequired as held:
        kept = b"".join([c async for c in capped(call.body, rt.settings.approval_max_body)])
        return await hold_call(rt, use, held, call.pairs, [], kept or None)
    relay = Relay(rt, use, auth)
    upstream = await relay.send(call.pairs, [], await _outgoing_body(rt, call, auth))
    return await relay.answer(upstream, functools.partial(release_held, scope))


async def proxy(
    rt: Runtime, scope: Scope, use: UseRequest, headers: Headers, body: bytes | None
) -> dict[str, Any] | Held:
    """``/sdk/proxy``: the call sent for the SDK, the whole answer returned in the protocol."""
    grant = await own_grant(rt, use.principal, use.grant_id)
    admit(rt, scope, use, grant)
    try:
        auth = await rt.pipeline.authorize(use, grant=grant)
    except ApprovalRequired as held:
        return await hold_call(rt, use, held, headers, [], body)
    return await forward_buffered(rt, use, auth, headers, [], body)


async def retrieve(rt: Runtime, use: UseRequest) -> dict[str, Any]:
    """``/sdk/token``: the credential in the shape the SDK injects it itself (no forward)."""
    auth = await rt.pipeline.authorize(use)
    aws = auth.grant.aws or {}
    try:
        payload = to_wire(
            auth.grant.rules,
            auth.credential,
            grant_id=auth.grant.grant_id,
            region=aws.get("region"),
            service=aws.get("service"),
        )
    except InjectionRuleError:
        raise InvalidInput(
            "this grant's injection cannot be expressed in retrieve mode; use proxy mode",
            code="restricted_grant_requires_proxy",
        ) from None
    answer = {
        **payload,
        "grant_id": auth.grant.grant_id,
        "token_type": "Bearer",
        "expires_in": auth.expires_in,
        "scopes": [],
        "provider_id": auth.grant.provider or "",
    }
    if auth.grant.expires_at is not None:
        answer["expires_at"] = auth.grant.expires_at.isoformat().replace("+00:00", "Z")
    return answer


async def forward_buffered(
    rt: Runtime,
    use: UseRequest,
    auth: Authorized,
    headers: Headers,
    query: Headers,
    body: bytes | None,
) -> dict[str, Any]:
    """Send, read the whole answer (capped), return the protocol's result (also approvals')."""
    started = time.monotonic()
    relay = Relay(rt, use, auth)
    upstream = await relay.send(headers, query, body)
    answer = await relay.whole(upstream, rt.settings.max_response_body)
    assert isinstance(answer.body, bytes)
    return {
        "approval_id": None,
        "status_code": answer.status,
        "headers": flatten(answer.headers),
        "body_b64": base64.b64encode(answer.body).decode(),
        "body_truncated": False,
        "duration_ms": int((time.monotonic() - started) * 1000),
    }


async def own_grant(rt: Runtime, principal: Principal, grant_id: str) -> GrantContext:
    """The grant's request-path state, loaded once for the whole request."""
    grant = await rt.pipeline.grant(grant_id)
    if grant is None or grant.app_id != principal.app_id:
        # Another app's grant answers exactly like one that does not exist.
        raise NotFound("grant not found", code="grant_not_found")
    return grant


def admit(rt: Runtime, scope: Scope, use: UseRequest, grant: GrantContext) -> None:
    """Take the request's place in its grant's in-flight share, or refuse it (audited, 429).

    The place is held on the request's scope until its answer is sent (`HotPaths` lets go).
    """
    try:
        slot = rt.upstream.inflight.enter(grant.grant_id)
    except VaultError as exc:
        rt.pipeline.refuse(use, grant, exc)
        raise
    hold(scope, slot)


async def hold_call(
    rt: Runtime,
    use: UseRequest,
    held: ApprovalRequired,
    headers: Headers,
    query: Headers,
    body: bytes | None,
) -> Held:
    """The call stored sealed until people decide; it is sent only once approved."""
    limit = rt.settings.approval_max_body
    if body is not None and len(body) > limit:
        raise PayloadTooLarge(
            f"the body is larger than the {limit} bytes a call waiting for approval may hold",
            code="body_too_large",
        )
    call = HeldRequest(use.method.upper(), use.target.url, kept_headers(headers), query, body)
    return Held(await rt.approvals.hold(use, held, call), use.request_id)


async def _outgoing_body(
    rt: Runtime, call: ProxyCall, auth: Authorized
) -> bytes | AsyncIterator[bytes] | None:
    # HTTP/1.1 frames a body by Content-Length or Transfer-Encoding; without either there is
    # none, whatever the method, and none is invented on the way out.
    if not any(name in ("content-length", "transfer-encoding") for name, _ in call.pairs):
        return None
    body = capped(call.body, rt.settings.max_request_body)
    if auth.grant.rules.sigv4:
        return b"".join([chunk async for chunk in body])  # SigV4 signs the payload hash
    return body


def _upstream_url(call: ProxyCall, grant: GrantContext) -> str:
    chosen = call.headers.get("x-vaultgate-target")
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
    return f"{origin}{call.rest or '/'}" + (f"?{call.query}" if call.query else "")


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


def flatten(headers: Headers) -> dict[str, str]:
    """Response headers as the protocol wants them: one string per name."""
    out: dict[str, str] = {}
    for name, value in headers:
        key = name.lower()
        out[key] = f"{out[key]}, {value}" if key in out else value
    return out
