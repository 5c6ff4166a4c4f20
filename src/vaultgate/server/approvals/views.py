"""The shapes approvals are answered in: the protocol's (official client) and the API's."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from vaultgate.server.approvals.models import HeldRequest


def iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat().replace("+00:00", "Z")


def _seconds_left(until: datetime, now: datetime) -> int:
    return max(0, int((until - now).total_seconds()))


def gate_status(gate: dict[str, Any], row: dict[str, Any]) -> str:
    """A gate shows its approver's decision; an undecided gate of a lapsed request expired."""
    if gate["status"] == "pending" and row["status"] == "expired":
        return "expired"
    return str(gate["status"])


def pending(row: dict[str, Any], gate_ids: list[str], url: str, now: datetime) -> dict[str, Any]:
    """``PendingApproval``: the first gate's id is the one to poll (any gate's id works)."""
    expires = {
        "expires_at": iso(row["expires_at"]),
        "expires_in": _seconds_left(row["expires_at"], now),
    }
    return {
        "approval_id": gate_ids[0],
        "approval_group_id": row["id"],
        "status": "pending",
        **expires,
        "approval_url": url,
        "gates": [{"approval_id": g, **expires, "approval_url": url} for g in gate_ids],
    }


def has_result(row: dict[str, Any]) -> bool:
    return row["status"] == "executed" and row["result_sealed"] is not None


def sdk_status(polled: str, row: dict[str, Any], gates: list[dict[str, Any]]) -> dict[str, Any]:
    """``ApprovalStatus`` as the official client validates it."""
    return {
        "approval_id": polled,
        "status": row["status"],
        "approval_group_id": row["id"],
        "gates": [
            {
                "approval_id": g["id"],
                "status": gate_status(g, row),
                "expires_at": iso(row["expires_at"]),
                "decided_at": iso(g["decided_at"]),
            }
            for g in gates
        ],
        "expires_at": iso(row["expires_at"]),
        "decided_at": iso(row["decided_at"]),
        "decision_reason": row["decision_reason"],
        "executed_at": iso(row["executed_at"]),
        "execution_error": row["execution_error"],
        "has_result": has_result(row),
    }


def public(
    row: dict[str, Any], gates: list[dict[str, Any]], url: str, held: HeldRequest | None
) -> dict[str, Any]:
    """The management API's view; with the held request (opened for the one asking) if given."""
    out: dict[str, Any] = {
        "id": row["id"],
        "status": row["status"],
        "app_id": row["app_id"],
        "grant_id": row["grant_id"],
        "key_id": row["key_id"],
        "caller": row["caller"],
        "reason": row["reason"],
        "mode": row["mode"],
        "method": row["method"],
        "host": row["host"],
        "approvals_required": len(gates),
        "approvals_given": sum(1 for g in gates if g["status"] == "approved"),
        "approval_url": url,
        "created_at": iso(row["created_at"]),
        "expires_at": iso(row["expires_at"]),
        "decided_at": iso(row["decided_at"]),
        "decision_reason": row["decision_reason"],
        "executed_at": iso(row["executed_at"]),
        "upstream_status": row["upstream_status"],
        "execution_error": row["execution_error"],
        "has_result": has_result(row),
        "gates": [
            {
                "id": g["id"],
                "position": g["position"],
                "status": gate_status(g, row),
                "approver": g["approver"],
                "comment": g["comment"],
                "decided_at": iso(g["decided_at"]),
            }
            for g in gates
        ],
    }
    if held is not None:
        out["request"] = {
            "method": held.method,
            "url": held.url,
            "headers": [[k, v] for k, v in held.headers],
            "query": [[k, v] for k, v in held.query],
            "body_size": 0 if held.body is None else len(held.body),
            "body_preview": held.preview(),
        }
    return out
