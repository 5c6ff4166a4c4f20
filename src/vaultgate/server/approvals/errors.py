"""The approval errors, all in the server's one tree (``server/errors.py``).

The codes ``approval_denied``, ``approval_expired`` and ``approval_execution_failed`` go on the
wire to official Alter clients, which raise their typed ``Approval*Error`` for them: never rename.
"""

from __future__ import annotations

from typing import Any

from vaultgate.server.errors import Conflict, Forbidden, NotFound


class ApprovalRequired(Forbidden):
    """Raised by the request path for a call that must wait; the mode's handler holds it.

    A handler that does not hold calls lets it through as a 403, so nothing is ever sent
    unapproved by accident.
    """

    def __init__(self, approvals: int, ttl_seconds: int, eligible: list[dict[str, Any]]) -> None:
        super().__init__("this call waits for human approval", code="approval_required")
        self.approvals = approvals
        self.ttl_seconds = ttl_seconds
        self.eligible = eligible


def not_found() -> NotFound:
    # Another app's approval answers exactly like one that does not exist.
    return NotFound("approval not found", code="approval_not_found")


def not_pending(status: str) -> Conflict:
    return Conflict(f"this approval is {status}, no longer pending", code="approval_not_pending")


def refused(message: str, code: str) -> Forbidden:
    return Forbidden(message, code=code)


# The answers of /sdk/approvals/{id}/result for an approval that has no result.
_RESULTLESS = {
    "denied": ("approval_denied", "the approver denied the request"),
    "expired": ("approval_expired", "the approval window elapsed without a decision"),
    "failed": ("approval_execution_failed", "the approved call could not be completed"),
}


def no_result(status: str, message: str | None = None) -> Conflict:
    code, default = _RESULTLESS.get(status, ("approval_pending", f"the approval is {status}"))
    return Conflict(message or default, code=code)
