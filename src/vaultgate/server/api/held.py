"""Answering a held call: the request is stored sealed and the caller gets a 202 to poll."""

from __future__ import annotations

import json

from starlette.responses import Response

from vaultgate.server.approvals.errors import ApprovalRequired
from vaultgate.server.approvals.models import HeldRequest, kept_headers
from vaultgate.server.egress.pipeline import UseRequest
from vaultgate.server.errors import PayloadTooLarge
from vaultgate.server.runtime import Runtime


async def held_response(
    rt: Runtime,
    use: UseRequest,
    held: ApprovalRequired,
    headers: list[tuple[str, str]],
    query: list[tuple[str, str]],
    body: bytes | None,
) -> Response:
    """``202`` with the protocol's ``PendingApproval``; the call is sent only once approved."""
    limit = rt.settings.approval_max_body
    if body is not None and len(body) > limit:
        raise PayloadTooLarge(
            f"the body is larger than the {limit} bytes a call waiting for approval may hold",
            code="body_too_large",
        )
    call = HeldRequest(use.method.upper(), use.target.url, kept_headers(headers), query, body)
    pending = await rt.approvals.hold(use, held, call)
    return Response(
        json.dumps(pending, separators=(",", ":")),
        status_code=202,
        media_type="application/json",
        headers={"X-Request-ID": use.request_id, "Cache-Control": "no-store"},
    )
