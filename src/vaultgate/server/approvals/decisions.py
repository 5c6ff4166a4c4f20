"""Who may decide a gate, and the audit records of approvals (linked by ``approval_id``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.engine import Connection

from vaultgate.server.approvals import store
from vaultgate.server.approvals.errors import refused as _refused
from vaultgate.server.audit.events import AuditEvent
from vaultgate.server.auth.services import Actor, actor_fields
from vaultgate.server.errors import Unprocessable


def check_approver(
    conn: Connection,
    row: dict[str, Any],
    gates: list[dict[str, Any]],
    email: str,
    approve: bool,
) -> None:
    if not store.portal_user_exists(conn, email):
        raise Unprocessable(
            f"approver: there is no portal user {email}",
            code="approver_unknown",
            field="approver",
        )
    if approve and row["caller"] and row["caller"].strip().lower() == email:
        raise _refused(
            "the one who asked may not approve their own request", "approver_is_requester"
        )
    for rule in row["eligible"]:
        named, group = rule.get("approvers"), rule.get("group")
        if (named is not None and email not in named) or (
            group is not None and not store.in_group(conn, group, email)
        ):
            raise _refused(f"{email} may not decide this approval", "approver_not_allowed")
    if any(g["approver"] == email for g in gates):
        raise _refused(
            f"{email} has already decided this approval; each person counts once",
            "approver_already_counted",
        )


def decided_event(
    row: dict[str, Any],
    gate: dict[str, Any],
    email: str,
    decision: str,
    comment: str | None,
    actor: Actor,
    now: datetime,
) -> AuditEvent:
    fields = actor_fields(actor)
    fields["portal_user"] = email  # the person the gate counts, whatever door they came through
    return AuditEvent.new(
        event="approval:decided",
        outcome="allowed" if decision == "approved" else "denied",
        now=now,
        code=decision,
        app_id=row["app_id"],
        grant_id=row["grant_id"],
        method=row["method"],
        details={
            "approval_id": row["id"],
            "gate": gate["id"],
            "gate_position": gate["position"],
            "comment": comment,
        },
        **fields,
    )


def row_event(
    row: dict[str, Any], name: str, outcome: str, code: str, now: datetime, **fields: Any
) -> AuditEvent:
    return AuditEvent.new(
        event=name,
        outcome=outcome,
        now=now,
        code=code,
        app_id=row["app_id"],
        key_id=row["key_id"],
        caller=row["caller"],
        grant_id=row["grant_id"],
        method=row["method"],
        mode=row["mode"],
        request_id=row["request_id"],
        details={"approval_id": row["id"]},
        **fields,
    )
