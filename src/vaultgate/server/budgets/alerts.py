"""The audit event of a budget crossing its alert threshold (routed to sinks like any event)."""

from __future__ import annotations

from typing import Final

from vaultgate.server.audit.events import AuditEvent
from vaultgate.server.budgets.ledger import BudgetAlert

BUDGET_THRESHOLD: Final = "alert:budget_threshold"


def alert_event(alert: BudgetAlert, cause: AuditEvent) -> AuditEvent:
    """The alert, attributed to the app of the use or outcome whose spend crossed it."""
    return AuditEvent.new(
        event=BUDGET_THRESHOLD,
        outcome="ok",
        now=cause.ts,
        code="budget_threshold",
        app_id=cause.app_id,
        grant_id=alert.grant_id,
        request_id=cause.request_id,
        details=alert.details(),
    )
