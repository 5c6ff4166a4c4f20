"""The Alter SDK protocol: ``/sdk/token`` (retrieve), ``/sdk/proxy`` (proxy), the audit sink.

Request and response fields follow ../shared/reference/alter-sdk-protocol.md exactly, so the
official client works unchanged; our own SDK speaks the same protocol through the same code.
"""

from __future__ import annotations

import base64
import binascii
import json
import time
from dataclasses import replace
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from vaultgate.server.api.deps import client_ip, runtime
from vaultgate.server.api.held import held_response
from vaultgate.server.api.sdk_addressing import grant_id_of
from vaultgate.server.audit.context import HEADER as CONTEXT_HEADER
from vaultgate.server.audit.context import parse_context
from vaultgate.server.audit.events import AuditEvent, new_id
from vaultgate.server.auth.key_controls import DEPRECATED_KEY
from vaultgate.server.auth.keys import Principal
from vaultgate.server.auth.sdk import signed_nonce
from vaultgate.server.egress import modes
from vaultgate.server.egress.events import use_details
from vaultgate.server.egress.modes import target_of, with_query
from vaultgate.server.egress.pipeline import UseRequest
from vaultgate.server.egress.urls import Target
from vaultgate.server.errors import InvalidInput, NotFound, Unprocessable
from vaultgate.server.fleet.admission import Admission
from vaultgate.server.policy.constraints import parse_constraints, redacted
from vaultgate.server.policy.decide import Mode
from vaultgate.server.runtime import Runtime

router = APIRouter(prefix="/sdk", tags=["sdk"], include_in_schema=True)

MAX_SDK_BODY = 12 * 1024 * 1024


def _json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(
        json.dumps(data, separators=(",", ":")),
        status_code=status,
        media_type="application/json",
        headers=headers,
    )


def _header_map(request: Request) -> dict[str, str]:
    """The request's headers decoded once; of a repeated name the first counts.

    Starlette's ``request.headers`` decodes every header again on each lookup, and the
    signature check alone makes a dozen. One map also means the signature is checked over the
    very nonce and timestamp that the replay check then records.
    """
    headers: dict[str, str] = {}
    for name, value in request.scope["headers"]:
        key = name.decode("latin-1")
        if key not in headers:
            headers[key] = value.decode("latin-1")
    return headers


async def _authenticate(request: Request) -> tuple[Runtime, Principal, bytes, dict[str, str]]:
    rt = runtime(request)
    body = await request.body()
    path = request.scope["path"]
    root = request.scope.get("root_path") or ""
    if root and path.startswith(root):
        path = path[len(root) :]
    query = request.scope.get("query_string", b"").decode("latin-1")
    signed_path = f"{path}?{query}" if query else path
    headers = _header_map(request)
    principal = rt.sdk_auth.authenticate(request.method, signed_path, body, headers)
    peer = client_ip(
        request.scope.get("client"), headers.get("x-forwarded-for"), rt.settings.trusted_proxies
    )
    if await rt.key_controls.enforce(principal, request.method, path, peer):
        request.scope[DEPRECATED_KEY] = True  # HotPaths adds X-Alter-Key-Deprecated
    return rt, principal, body, headers


def _payload(body: bytes) -> dict[str, Any]:
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):  # RecursionError: nested too deep
        raise InvalidInput(
            "the body is not valid JSON (or is nested too deeply)",
            code="invalid_json",
            field="body",
        ) from None
    if not isinstance(data, dict):
        raise InvalidInput("the body must be a JSON object", code="invalid_json", field="body")
    return data


def _str_field(
    data: dict[str, Any], name: str, *, required: bool = True, cap: int = 65536
) -> str | None:
    value = data.get(name)
    if value is None:
        if required:
            raise Unprocessable(f"{name}: field required", field=name)
        return None
    if not isinstance(value, str) or (required and not value):
        raise Unprocessable(f"{name}: must be a non-empty string", field=name)
    if len(value) > cap:
        raise Unprocessable(f"{name}: longer than {cap} characters", field=name)
    return value


def _use(
    request: Request,
    headers: dict[str, str],
    principal: Principal,
    grant_id: str,
    method: str,
    target: Target,
    mode: Mode,
    reason: str | None,
) -> UseRequest:
    trusted = runtime(request).settings.trusted_proxies
    return UseRequest(
        principal=principal,
        grant_id=grant_id,
        method=method,
        target=target,
        mode=mode,
        caller=headers.get("x-alter-caller"),
        reason=reason,
        client_ip=client_ip(request.scope.get("client"), headers.get("x-forwarded-for"), trusted),
        request_id=headers.get("x-request-id") or new_id(),
        display_url=target.url,
        nonce=signed_nonce(principal, headers),
        constraints=parse_constraints(headers),
        context=parse_context(headers.get(CONTEXT_HEADER)),
    )


def _grant_id(data: dict[str, Any]) -> str:
    if data.get("provider_id") is not None and data.get("grant_id") is None:
        raise Unprocessable(
            "provider_id addressing is not supported; pass grant_id",
            code="unsupported",
            field="provider_id",
        )
    return str(_str_field(data, "grant_id", cap=64))


def _method(value: object) -> str:
    if not isinstance(value, str) or not value.isalpha() or len(value) > 16:
        raise Unprocessable("request.method: not an HTTP method", field="request.method")
    return value.upper()


@router.post("/token")
async def token(request: Request) -> Response:
    rt, principal, body, headers = await _authenticate(request)
    data = _payload(body)
    grant_id = await grant_id_of(rt, principal, data)
    req = data.get("request")
    if not isinstance(req, dict):
        raise Unprocessable("request: must be an object with method and url", field="request")
    method = _method(req.get("method"))
    url = _str_field(req, "url", cap=65536)
    target = target_of(str(url))
    reason = _str_field(data, "reason", required=False)
    use = _use(request, headers, principal, grant_id, method, target, "retrieve", reason)
    answer = await modes.retrieve(rt, use)
    return _json(answer, headers={"Cache-Control": "no-store", "X-Request-ID": use.request_id})


def _proxy_body(data: dict[str, Any]) -> bytes | None:
    if "body_b64" in data and data["body_b64"] is not None:
        try:
            return base64.b64decode(str(data["body_b64"]), validate=True)
        except (binascii.Error, ValueError):
            raise Unprocessable("body_b64: not valid base64", field="body_b64") from None
    if "body" in data and data["body"] is not None:
        return json.dumps(data["body"], separators=(",", ":")).encode()
    return None


def _str_map(data: dict[str, Any], name: str) -> dict[str, str]:
    value = data.get(name) or {}
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str | int | float) for k, v in value.items()
    ):
        raise Unprocessable(f"{name}: must map strings to strings", field=name)
    return {k: str(v) for k, v in value.items()}


@router.post("/proxy")
async def proxy(request: Request) -> Response:
    rt, principal, body, headers = await _authenticate(request)
    data = _payload(body)
    grant_id = await grant_id_of(rt, principal, data)
    method = _method(data.get("method"))
    target = target_of(str(_str_field(data, "url", cap=65536)))
    outgoing = _str_map(data, "headers")
    # The caller's query_params join the URL before policy sees it (egress/hygiene.py).
    target = with_query(target, _str_map(data, "query_params"))
    content = _proxy_body(data)
    if (
        content is not None
        and "body" in data
        and not any(k.lower() == "content-type" for k in outgoing)
    ):
        outgoing["Content-Type"] = "application/json"
    reason = _str_field(data, "reason", required=False)
    use = _use(request, headers, principal, grant_id, method, target, "proxy", reason)
    constraints, content = redacted(use.constraints, method, content)
    use = replace(use, constraints=constraints)
    result = await modes.proxy(rt, request.scope, use, list(outgoing.items()), content)
    if isinstance(result, modes.Held):
        return held_response(result)
    return _json(result, headers={"X-Request-ID": use.request_id})


def _report_details(headers: dict[str, str], principal: Principal) -> dict[str, Any]:
    context = parse_context(headers.get(CONTEXT_HEADER))
    return {"reported_by": "sdk", **(use_details(principal, context) or {})}


_ACCEPTED = b'{"ok":true}'


MAX_REPORTS = 100  # outcome reports in one batch (``/sdk/oauth/audit/api-calls``)


async def _report_event(
    rt: Runtime, principal: Principal, sender: dict[str, Any], data: Any
) -> AuditEvent:
    """The ``grant:outcome`` event one retrieve-mode report stands for; ``sender`` holds the
    fields its request's headers give (``_sender``), the same for every report of a batch."""
    if not isinstance(data, dict):
        raise InvalidInput("a report must be a JSON object", code="invalid_json", field="body")
    grant_id = _grant_id(data)
    grant = await rt.pipeline.grant(grant_id)
    if grant is None or grant.app_id != principal.app_id:
        # A report may only name a grant of the reporting key's own app.
        raise NotFound("grant not found", code="grant_not_found", field="grant_id")
    status = data.get("response_status")
    latency = data.get("latency_ms")
    return AuditEvent.new(
        event="grant:outcome",
        outcome="ok" if isinstance(status, int) and 0 < status < 400 else "error",
        now=rt.clock(),
        grant_id=grant.grant_id,
        secret_id=grant.secret_id,
        method=str(data.get("method") or "")[:16] or None,
        url=str(data.get("url") or ""),
        reason=data.get("reason") if isinstance(data.get("reason"), str) else None,
        mode="retrieve",
        upstream_status=status if isinstance(status, int) else None,
        latency_ms=latency if isinstance(latency, int) else None,
        **sender,
    )


def _sender(
    rt: Runtime, request: Request, principal: Principal, headers: dict[str, str]
) -> dict[str, Any]:
    return {
        "app_id": principal.app_id,
        "key_id": principal.key_id,
        "caller": headers.get("x-alter-caller"),
        # From the header map already decoded: Starlette's request.headers decodes them again.
        "source_ip": client_ip(
            request.scope.get("client"),
            headers.get("x-forwarded-for"),
            rt.settings.trusted_proxies,
        ),
        "details": _report_details(headers, principal),
    }


@router.post("/oauth/audit/api-call")
async def audit_api_call(request: Request) -> Response:
    """The SDK's report of a retrieve-mode call: the only way the server sees its outcome."""
    rt, principal, body, headers = await _authenticate(request)
    sender = _sender(rt, request, principal, headers)
    event = await _report_event(rt, principal, sender, _payload(body))
    # A replayed report is refused like a replayed use: one capture, one record. Its sender
    # waits in the background, so it may ride in the next use's commit (audit.writer.LINGER):
    # committed alone, it was the commit the caller's next token call queued behind.
    admission = Admission(at=time.time(), nonce=signed_nonce(principal, headers))
    await rt.audit.record(event, admission, linger=True)
    return Response(_ACCEPTED, status_code=202, media_type="application/json")


@router.post("/oauth/audit/api-calls")
async def audit_api_calls(request: Request) -> Response:
    """Several retrieve-mode reports in one signed request: ``{"reports": [report, ...]}``.

    vaultgate's own SDK sends what queued up while its previous report was in flight this way
    (one request, one signature and one nonce for up to ``MAX_REPORTS``); the official client
    sends each report alone to ``/sdk/oauth/audit/api-call``. Each report is the single
    route's body and becomes its own event. The batch is all or nothing: any report at fault
    refuses the whole batch with its index named, and a replayed batch is refused whole.
    """
    rt, principal, body, headers = await _authenticate(request)
    reports = _payload(body).get("reports")
    if not isinstance(reports, list) or not reports:
        raise Unprocessable("reports: must be a non-empty list of reports", field="reports")
    if len(reports) > MAX_REPORTS:
        raise Unprocessable(f"reports: at most {MAX_REPORTS} reports in one batch", field="reports")
    sender, events = _sender(rt, request, principal, headers), []
    for index, data in enumerate(reports):
        try:
            events.append(await _report_event(rt, principal, sender, data))
        except (InvalidInput, NotFound) as exc:
            where = f"reports[{index}]"
            field = f"{where}.{exc.field}" if exc.field else where
            raise type(exc)(f"{where}: {exc.message}", code=exc.code, field=field) from None
    admission = Admission(at=time.time(), nonce=signed_nonce(principal, headers))
    await rt.audit.record(events[0], admission, linger=True, more=tuple(events[1:]))
    return Response(
        b'{"ok":true,"recorded":%d}' % len(events), status_code=202, media_type="application/json"
    )
