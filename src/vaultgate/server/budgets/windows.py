"""A budget's window: the calendar hour, day or month (UTC) that an instant falls in.

Calendar windows rather than sliding ones: a spending budget is read against an invoice, and
``Retry-After`` can name the moment the window renews.
"""

from __future__ import annotations

from datetime import UTC, datetime

from vaultgate.server.policy.models import BudgetPeriod


def window_of(per: BudgetPeriod, at: float) -> tuple[int, int]:
    """The window holding the epoch instant ``at``: (start, end) in whole epoch seconds."""
    moment = datetime.fromtimestamp(at, UTC)
    if per == "hour":
        start = moment.replace(minute=0, second=0, microsecond=0)
        return _epoch(start), _epoch(start) + 3600
    if per == "day":
        start = moment.replace(hour=0, minute=0, second=0, microsecond=0)
        return _epoch(start), _epoch(start) + 86400
    start = moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    following = start.replace(year=start.year + 1, month=1) if start.month == 12 else None
    end = following or start.replace(month=start.month + 1)
    return _epoch(start), _epoch(end)


def previous_start(per: BudgetPeriod, start: int) -> int:
    """The start of the window before the one starting at ``start``."""
    return window_of(per, start - 1)[0]


def _epoch(moment: datetime) -> int:
    return int(moment.timestamp())
