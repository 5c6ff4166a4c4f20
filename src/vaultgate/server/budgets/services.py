"""A grant's usage per budget window, for ``GET /v1/grants/{id}/usage`` and its portal page.

Figures only: counts, tokens and USD. Nothing here reads a credential or a request's content.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from vaultgate.server.budgets.ledger import display, iso
from vaultgate.server.budgets.windows import window_of
from vaultgate.server.clock import Clock
from vaultgate.server.errors import NotFound
from vaultgate.server.policy.models import Budget
from vaultgate.server.secrets.grants import GrantService
from vaultgate.server.storage.engine import reading
from vaultgate.server.storage.tables import budget_usage

HISTORY: Final = 24  # windows of the grant's own budget shown, newest first


@dataclass(frozen=True, slots=True)
class _Row:
    requests: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    usd_nanos: int = 0

    def spent(self, budget: Budget) -> int:
        if budget.metric == "requests":
            return self.requests
        if budget.metric == "tokens":
            return self.tokens_in + self.tokens_out
        return self.usd_nanos

    def figures(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "tokens_in": self.tokens_in,
            "tokens_out": self.tokens_out,
            "usd": display("usd", self.usd_nanos),
        }


class UsageService:
    def __init__(self, engine: Engine, grants: GrantService, clock: Clock) -> None:
        self._engine = engine
        self._grants = grants
        self._clock = clock

    def usage(self, grant_id: str) -> dict[str, Any]:
        """Each budget that binds the grant (its own, then its ancestors') in its current
        window, and the grant's own recent windows."""
        grant = self._grants.resolve(grant_id)
        if grant is None:
            raise NotFound("grant not found", code="grant_not_found")
        now = self._clock().timestamp()
        lineage = grant.lineage or (grant.grant_id,)
        bound = [
            (gid, policy.budget)
            for gid, policy in zip(lineage, grant.policies, strict=False)
            if policy.budget is not None
        ]
        with reading(self._engine) as conn:
            budgets = [self._current(conn, gid, b, now, gid != grant_id) for gid, b in bound]
            history = self._history(conn, grant_id, bound[0][1] if bound else None)
        return {"grant_id": grant_id, "budgets": budgets, "history": history}

    @staticmethod
    def _current(
        conn: sa.Connection, grant_id: str, budget: Budget, now: float, inherited: bool
    ) -> dict[str, Any]:
        start, end = window_of(budget.per, now)
        row = _read(conn, grant_id, budget.per, start)
        spent = row.spent(budget)
        return {
            "grant_id": grant_id,
            "inherited": inherited,
            "metric": budget.metric,
            "per": budget.per,
            "limit": display(budget.metric, budget.limit),
            "alert_at_percent": budget.alert_at_percent,
            "window": {
                "start": iso(start),
                "end": iso(end),
                **row.figures(),
                "spent": display(budget.metric, spent),
                "remaining": display(budget.metric, max(0, budget.limit - spent)),
                "exhausted": spent >= budget.limit,
            },
        }

    @staticmethod
    def _history(conn: sa.Connection, grant_id: str, budget: Budget | None) -> list[dict[str, Any]]:
        if budget is None:
            return []
        c = budget_usage.c
        rows = conn.execute(
            sa.select(c.window_start, c.requests, c.tokens_in, c.tokens_out, c.usd_nanos)
            .where(c.grant_id == grant_id, c.period == budget.per)
            .order_by(c.window_start.desc())
            .limit(HISTORY)
        ).all()
        history = []
        for start, *figures in rows:
            row = _Row(*(int(v) for v in figures))
            spent = row.spent(budget)
            history.append(
                {
                    "start": iso(int(start)),
                    "end": iso(window_of(budget.per, int(start))[1]),
                    **row.figures(),
                    "spent": display(budget.metric, spent),
                    "percent": min(100, spent * 100 // budget.limit),
                }
            )
        return history


def _read(conn: sa.Connection, grant_id: str, per: str, start: int) -> _Row:
    c = budget_usage.c
    found = conn.execute(
        sa.select(c.requests, c.tokens_in, c.tokens_out, c.usd_nanos).where(
            c.grant_id == grant_id, c.period == per, c.window_start == start
        )
    ).first()
    return _Row(*(int(v) for v in found)) if found else _Row()
