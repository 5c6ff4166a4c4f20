"""One use of a grant in the audit trail: its event is built once and completed for what follows.

A request's ``grant:use`` (or ``grant:deny``) says who used which grant for what; the events that
follow it on the same request (its ``grant:outcome``, a ``grant:alert`` for an echoed credential)
say the same who and what, so they are that event completed, not built again from the request:
one place decides which fields a use carries, and they cannot drift apart.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from vaultgate.server.audit.events import AuditEvent, clean_details, new_event_id

if TYPE_CHECKING:
    from vaultgate.server.auth.keys import Principal
    from vaultgate.server.egress.pipeline import UseRequest
    from vaultgate.server.secrets.grants import GrantContext


def use_event(
    use: UseRequest,
    grant: GrantContext,
    now: datetime,
    *,
    event: str,
    outcome: str,
    code: str,
    details: dict[str, Any] | None = None,
) -> AuditEvent:
    """The request's own event: ``grant:use`` when it goes ahead, ``grant:deny`` when not."""
    extra = {**(use_details(use.principal, use.context) or {}), **(details or {})}
    return AuditEvent.new(
        event=event,
        outcome=outcome,
        now=now,
        code=code,
        app_id=grant.app_id,
        key_id=use.principal.key_id or None,  # an approved call's key may be gone
        caller=use.caller,
        source_ip=use.client_ip,
        grant_id=grant.grant_id,
        secret_id=grant.secret_id,
        method=use.method.upper(),
        url=use.display_url,
        reason=use.reason,
        mode=use.mode,
        request_id=use.request_id,
        details=extra or None,
    )


def completed(
    use: AuditEvent,
    now: datetime,
    *,
    event: str,
    outcome: str,
    code: str | None,
    details: dict[str, Any],
    upstream_status: int | None = None,
    latency_ms: int | None = None,
) -> AuditEvent:
    """An event of the same request as ``use``: its who and what, a new id, time and result.

    The reason was recorded with the use and is not repeated; ``details`` name the use first.
    """
    return dataclasses.replace(
        use,
        id=new_event_id(),
        ts=now.astimezone(UTC),
        event=event,
        outcome=outcome,
        code=code,
        reason=None,
        upstream_status=upstream_status,
        latency_ms=latency_ms,
        details=clean_details({"use_event": use.id, **details}),
    )


def use_details(principal: Principal, context: dict[str, str] | None) -> dict[str, object] | None:
    """A use event's details: the verified agent (from its key) and the caller's context."""
    details: dict[str, object] = {}
    if principal.agent_id is not None:
        details["agent"] = {"id": principal.agent_id, "name": principal.agent_name}
    if context:
        details["context"] = context
    return details or None
