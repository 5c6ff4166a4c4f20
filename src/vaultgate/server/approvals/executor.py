"""Sending an approved call exactly once, with the credential as it is at that moment.

The claim (``approved -> executing``, conditional) makes this node the only sender. What comes
after it is at most one send: a failure, or a node that dies before recording the answer, ends
the approval as ``failed`` (the lease in services.py) and is never retried.
"""

from __future__ import annotations

import logging
from typing import Any

import anyio.to_thread

from vaultgate.server.approvals.models import HeldRequest
from vaultgate.server.audit.events import new_id
from vaultgate.server.auth.keys import Principal
from vaultgate.server.egress.events import use_event
from vaultgate.server.egress.modes import forward_buffered, target_of
from vaultgate.server.egress.pipeline import Authorized, UseRequest
from vaultgate.server.egress.urls import host_allowed
from vaultgate.server.errors import Forbidden, Unprocessable, VaultError
from vaultgate.server.runtime import Runtime

log = logging.getLogger("vaultgate.approvals")


async def execute(rt: Runtime, request_id: str) -> None:
    service = rt.approvals
    row = await anyio.to_thread.run_sync(service.claim, request_id)
    if row is None:
        return  # another node (or request) claimed it first
    try:
        held = service.held_request(row)
        if held is None:
            raise VaultError("the held request is gone", code="request_missing")
        payload = await _send(rt, row, held)
    except VaultError as exc:
        await anyio.to_thread.run_sync(service.fail, row, exc.message, exc.code)
    except Exception as exc:  # recorded as failed: the call must never be tried again
        log.error("approved call %s failed: %s", request_id, type(exc).__name__)
        await anyio.to_thread.run_sync(service.fail, row, "internal error", "internal_error")
    else:
        await anyio.to_thread.run_sync(service.finish, row, payload)
    service.notify(request_id)


async def _send(rt: Runtime, row: dict[str, Any], held: HeldRequest) -> dict[str, Any]:
    # Past the cache: a rotation or revocation since the call was held must count now.
    grant = await anyio.to_thread.run_sync(rt.grants.refresh, row["grant_id"])
    now = rt.clock()
    if grant is None or grant.revoked:
        raise Forbidden("the grant was revoked before the call was sent", code="grant_revoked")
    if grant.expires_at is not None and now >= grant.expires_at:
        raise Forbidden("the grant expired before the call was sent", code="grant_expired")
    target = target_of(held.url)
    if not host_allowed(target, grant.hosts):
        raise Unprocessable(
            f"{target.origin} is no longer an allowed destination of this grant",
            code="blocked_destination",
        )
    use = UseRequest(
        principal=Principal(row["key_id"] or "", "app", row["app_id"], "approval", None),
        grant_id=grant.grant_id,
        method=held.method,
        target=target,
        mode=row["mode"],
        caller=row["caller"],
        reason=row["reason"],
        client_ip=None,
        request_id=row["request_id"] or new_id(),
        display_url=target.url,
    )
    event = use_event(
        use,
        grant,
        now,
        event="grant:use",
        outcome="allowed",
        code="allowed",
        details={"approval_id": row["id"]},
    )
    await rt.audit.record(event)  # nothing is opened before its use is on record
    credential = await anyio.to_thread.run_sync(
        rt.secrets.open, grant.app_id, grant.secret_id, grant.secret_version, grant.credential_type
    )
    # An OAuth secret's access token (obtained or refreshed as for any use), not its client secret.
    credential, _ = await rt.pipeline.injectable(use, grant, credential)
    auth = Authorized(grant, credential, event.id, event)
    return await forward_buffered(rt, use, auth, held.headers, held.query, held.body)
