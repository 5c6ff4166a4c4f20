"""Budgets counted inside the audit batch's transaction, so they hold across workers and nodes.

Every batch of every process locks the audit head first (``fleet.admission``), so the totals
read here belong to one serial history of the deployment. A use is checked against each
budget of its grant and its ancestors (a clone spends its ancestors' budgets too) and, when
admitted, counts one request in each; the outcome of a metered answer adds its tokens and USD
to the same windows. The answer that crosses a budget therefore completes, and the next use, on
whichever node, is refused. Crossing ``alert_at_percent`` yields one alert per window: the
totals only grow within a window, so "below before, at or above after" happens once.

Totals live in ``budget_usage``, one row per grant, period and window, added to with an upsert.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Final

from vaultgate.server.budgets.windows import window_of
from vaultgate.server.errors import BudgetExceeded
from vaultgate.server.policy.models import NANOS_PER_USD, Budget, BudgetPeriod
from vaultgate.server.storage.driver import SQL

Spending = tuple[tuple[str, Budget], ...]  # (grant id, its budget): own grant first


@dataclass(frozen=True, slots=True)
class Spend:
    """What a finished answer used, added to each budget of its lineage."""

    tokens_in: int = 0
    tokens_out: int = 0
    usd_nanos: int = 0


@dataclass(frozen=True, slots=True)
class BudgetAlert:
    """A budget crossed its alert threshold in a window (``alert:budget_threshold``)."""

    grant_id: str
    budget: Budget
    window_start: int
    window_end: int
    spent: int

    def details(self) -> dict[str, object]:
        return {
            "metric": self.budget.metric,
            "per": self.budget.per,
            "limit": display(self.budget.metric, self.budget.limit),
            "spent": display(self.budget.metric, self.spent),
            "alert_at_percent": self.budget.alert_at_percent,
            "window_start": iso(self.window_start),
            "window_end": iso(self.window_end),
        }


@dataclass(slots=True)
class _Totals:
    stored: tuple[int, int, int, int]
    requests: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    usd_nanos: int = 0

    def spent(self, budget: Budget) -> int:
        requests, tokens_in, tokens_out, usd = self.stored
        if budget.metric == "requests":
            return requests + self.requests
        if budget.metric == "tokens":
            return tokens_in + tokens_out + self.tokens_in + self.tokens_out
        return usd + self.usd_nanos

    def changed(self) -> bool:
        return any((self.requests, self.tokens_in, self.tokens_out, self.usd_nanos))


Key = tuple[str, BudgetPeriod, int]


class Ledger:
    """The budget windows one batch touches: read once, added to in order, written at the end."""

    def __init__(self, conn: SQL) -> None:
        self._conn = conn
        self._sql = _SQL[conn.dialect.name]
        self._totals: dict[Key, _Totals] = {}
        self.alerts: list[BudgetAlert] = []

    def use(self, at: float, spending: Spending) -> BudgetExceeded | None:
        """Admit one use: refused when any budget is spent, else one request counted in each."""
        for grant_id, budget in spending:
            totals = self._window(grant_id, budget.per, at)
            if totals.spent(budget) >= budget.limit:
                return exceeded(grant_id == spending[0][0], budget, at)
        for grant_id, budget in spending:
            self._add(grant_id, budget, at, Spend(), requests=1)
        return None

    def spend(self, at: float, spending: Spending, spend: Spend) -> None:
        """Add an answer's usage, in the windows of the use that made it."""
        for grant_id, budget in spending:
            self._add(grant_id, budget, at, spend, requests=0)

    def flush(self) -> None:
        rows = [
            (gid, per, start, t.requests, t.tokens_in, t.tokens_out, t.usd_nanos)
            for (gid, per, start), t in self._totals.items()
            if t.changed()
        ]
        if rows:
            self._conn.exec_driver_sql(self._sql["add"], rows)

    def _add(self, grant_id: str, budget: Budget, at: float, spend: Spend, requests: int) -> None:
        totals = self._window(grant_id, budget.per, at)
        before = totals.spent(budget)
        totals.requests += requests
        totals.tokens_in += spend.tokens_in
        totals.tokens_out += spend.tokens_out
        totals.usd_nanos += spend.usd_nanos
        after = totals.spent(budget)
        threshold = budget.limit * budget.alert_at_percent
        if before * 100 < threshold <= after * 100:
            start, end = window_of(budget.per, at)
            self.alerts.append(BudgetAlert(grant_id, budget, start, end, after))

    def _window(self, grant_id: str, per: BudgetPeriod, at: float) -> _Totals:
        key = (grant_id, per, window_of(per, at)[0])
        totals = self._totals.get(key)
        if totals is None:
            row = self._conn.exec_driver_sql(self._sql["read"], key).first()
            stored = (int(row[0]), int(row[1]), int(row[2]), int(row[3])) if row else (0, 0, 0, 0)
            totals = self._totals[key] = _Totals(stored)
        return totals


def exceeded(own: bool, budget: Budget, at: float) -> BudgetExceeded:
    """429 ``quota_exceeded`` until the window renews (the official client's quota error)."""
    _, end = window_of(budget.per, at)
    whose = "this grant's" if own else "an ancestor grant's"
    amount = display(budget.metric, budget.limit)
    return BudgetExceeded(
        f"{whose} budget of {amount} {budget.metric} per {budget.per} is spent; "
        f"it renews at {iso(end)}",
        retry_after=max(1, int(end - at + 0.999)),
        extra={"budget": {"metric": budget.metric, "per": budget.per, "resets_at": iso(end)}},
    )


def display(metric: str, units: int) -> int | str:
    """Counted units as shown to people: requests and tokens as numbers, USD as text."""
    if metric != "usd":
        return units
    return str((Decimal(units) / NANOS_PER_USD).quantize(Decimal("0.000001")))


def iso(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# Driver SQL (see audit.sink): every batch that spends runs these. Built from constant names.
def _statements(m: str) -> dict[str, str]:
    columns = "grant_id, period, window_start, requests, tokens_in, tokens_out, usd_nanos"
    added = ", ".join(
        f"{c} = budget_usage.{c} + excluded.{c}"
        for c in ("requests", "tokens_in", "tokens_out", "usd_nanos")
    )
    return {
        "read": (
            "SELECT requests, tokens_in, tokens_out, usd_nanos FROM budget_usage "  # noqa: S608
            f"WHERE grant_id = {m} AND period = {m} AND window_start = {m}"
        ),
        "add": (
            f"INSERT INTO budget_usage ({columns}) VALUES ({', '.join([m] * 7)}) "  # noqa: S608
            f"ON CONFLICT (grant_id, period, window_start) DO UPDATE SET {added}"
        ),
    }


_SQL: Final = {"sqlite": _statements("?"), "postgresql": _statements("%s")}
