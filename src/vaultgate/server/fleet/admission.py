"""The checks a use must still pass inside the transaction that records it.

The audit writer commits each batch of use records in one transaction that first locks the audit
head, and every batch of every worker and node takes that same lock. So whatever is checked
there, after the lock, is checked against one serial history of the whole deployment, at no
round trip of its own (the statements ride in the batch the request waits for anyway):

- **stale view**: the decision was made on caches loaded under a change count older than the
  database's; the use is not recorded and the caller decides again on fresh data;
- **replay**: a signed request's nonce is already stored (from any worker or node), or appears
  twice in the batch; refused and audited as a denial;
- **rate limits**: a sliding window per limited grant, own grant first and then each limited
  ancestor, counted over ``rate_hits``; refused with the seconds until the oldest hit leaves it;
- **budgets**: the spend of the grant and its budgeted ancestors in their current windows
  (``budgets.ledger``); an outcome's usage is added in the same way, so it is counted before
  the next use of any node is admitted.

A refused use is written as a ``grant:deny`` with the refusal's code; nothing is stored of a
refused use's nonce or hits, so a refusal never spends budget.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final

from vaultgate.server.budgets.ledger import BudgetAlert, Ledger, Spend, Spending
from vaultgate.server.errors import Unauthenticated, VaultError
from vaultgate.server.fleet import changes
from vaultgate.server.fleet.changes import Changes
from vaultgate.server.policy import Decision, RateLimit, denial_error
from vaultgate.server.storage.driver import SQL
from vaultgate.server.storage.tables import rate_hits, sdk_nonces

if TYPE_CHECKING:  # audit imports this module (its writer runs the checks)
    from vaultgate.server.audit.events import AuditEvent

# A signed request is accepted within 300 s of its timestamp either way, so a replay can arrive
# up to 600 s after the original: its nonce is kept that long.
NONCE_RETENTION: Final = 600.0
PRUNE_EVERY: Final = 10.0

REPLAYED: Final = "this request was already seen (nonce replay)"


class StaleView(Exception):
    """The use was decided on a view older than the database's change count ``current``."""

    def __init__(self, current: int) -> None:
        super().__init__(f"decided on a stale view (changes now at {current})")
        self.current = current


def replayed() -> Unauthenticated:
    return Unauthenticated(REPLAYED, code="replayed_request")


def refused(event: AuditEvent, refusal: Exception) -> AuditEvent:
    """The record of a use its admission refused: a denial with the refusal's code."""
    code = refusal.code if isinstance(refusal, VaultError) else "refused"
    name = "grant:deny" if event.event == "grant:use" else event.event
    return dataclasses.replace(event, event=name, outcome="denied", code=code)


def nonce_key(key_id: str, nonce: str) -> str:
    """What is stored of a nonce: scoped to the key that signed it, bounded in length."""
    return hashlib.sha256(f"{key_id}:{nonce}".encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Admission:
    """What one use must still pass when it is recorded."""

    at: float  # epoch seconds of the decision
    view: int | None = None  # the change count the decision's caches were loaded under
    nonce: str | None = None  # ``nonce_key`` of a signed request
    budgets: tuple[tuple[str, RateLimit], ...] = ()  # own grant first, then limited ancestors
    spending: Spending = ()  # the budgets of the grant and its ancestors, own first
    spend: Spend | None = None  # an outcome's usage: added to ``spending``, nothing checked


@dataclass(slots=True)
class _Window:
    """One grant's sliding window during a batch: stored hits, and those this batch adds."""

    grant_id: str
    limit: RateLimit
    since: float
    stored: int
    added: list[float] = field(default_factory=list)

    def full(self) -> bool:
        return self.stored + len(self.added) >= self.limit.requests


class Admitter:
    """Runs the checks of one batch; one per process (it remembers when it last pruned)."""

    def __init__(self, changes_seen: Changes) -> None:
        self._changes = changes_seen
        self._pruned_at = 0.0
        # The budget alerts of the last batch, by the index of the item that crossed them.
        self.alerts: list[tuple[int, BudgetAlert]] = []

    def admit(self, conn: SQL, items: Sequence[Admission | None]) -> list[Exception | None]:
        """For each item, None when admitted, else why not; stores what admitted items spend."""
        verdicts: list[Exception | None] = [None] * len(items)
        self.alerts = []
        present = [(i, a) for i, a in enumerate(items) if a is not None]
        if not present:
            return verdicts
        windows: dict[str, _Window] = {}
        ledger = Ledger(conn)
        self._check_views(conn, present, verdicts)
        self._check_nonces(conn, present, verdicts)
        self.alerts = self._check_rates(conn, present, verdicts, windows, ledger)
        admitted = [a for i, a in present if verdicts[i] is None]
        self._store(conn, admitted)
        ledger.flush()
        self._prune(conn, max(a.at for _, a in present), windows)
        return verdicts

    def _check_views(
        self,
        conn: SQL,
        present: list[tuple[int, Admission]],
        verdicts: list[Exception | None],
    ) -> None:
        if all(a.view is None for _, a in present):
            return
        current = changes.read(conn)
        self._changes.observe(current)
        for i, a in present:
            if a.view is not None and a.view < current:
                verdicts[i] = StaleView(current)

    @staticmethod
    def _check_nonces(
        conn: SQL, present: list[tuple[int, Admission]], verdicts: list[Exception | None]
    ) -> None:
        """Store each nonce in one statement; one the table already held is a replay.

        A nonce is stored even when a rate limit then refuses its use: a refused capture stays
        refused. Only a stale decision keeps its nonce unstored, since it is decided again.
        """
        first: dict[str, float] = {}
        for i, a in present:
            if a.nonce is None or verdicts[i] is not None:
                continue
            if a.nonce in first:
                verdicts[i] = replayed()  # a second copy in this same batch
            else:
                first[a.nonce] = a.at
        if not first:
            return
        inserted = set(
            conn.exec_driver_sql(_insert_nonces(conn.dialect.name, len(first)), _flat(first))
            .scalars()
            .all()
        )
        for i, a in present:
            if a.nonce is not None and verdicts[i] is None and a.nonce not in inserted:
                verdicts[i] = replayed()

    @staticmethod
    def _check_rates(
        conn: SQL,
        present: list[tuple[int, Admission]],
        verdicts: list[Exception | None],
        windows: dict[str, _Window],
        ledger: Ledger,
    ) -> list[tuple[int, BudgetAlert]]:
        """Rate limits, then budgets, item by item: a refusal spends neither."""
        since = min(a.at for _, a in present)
        alerts: list[tuple[int, BudgetAlert]] = []
        for i, a in present:
            if verdicts[i] is not None or not (a.budgets or a.spending):
                continue
            opened = [_window(conn, windows, gid, limit, since) for gid, limit in a.budgets]
            full = next((w for w in opened if w.full()), None)
            if full is not None:
                verdicts[i] = _rate_limited(conn, full, a.at)
                continue
            if a.spending:
                verdicts[i] = _spend(ledger, a)
                alerts.extend((i, alert) for alert in ledger.alerts)
                ledger.alerts.clear()
                if verdicts[i] is not None:
                    continue
            for window in opened:
                window.added.append(a.at)
        return alerts

    @staticmethod
    def _store(conn: SQL, admitted: list[Admission]) -> None:
        hits = [(gid, a.at) for a in admitted for gid, _ in a.budgets]
        if hits:
            conn.exec_driver_sql(_SQL[conn.dialect.name]["hit"], hits)

    def _prune(self, conn: SQL, now: float, windows: dict[str, _Window]) -> None:
        """Now and then, forget nonces past any replay window and hits that left their window.

        Hits are pruned per grant as its window is counted, so what a grant no longer used
        leaves behind is at most its own ``requests`` rows.
        """
        if now - self._pruned_at < PRUNE_EVERY:
            return
        self._pruned_at = now
        conn.execute(sdk_nonces.delete().where(sdk_nonces.c.seen_at < now - NONCE_RETENTION))
        for window in windows.values():
            conn.execute(
                rate_hits.delete().where(
                    rate_hits.c.grant_id == window.grant_id, rate_hits.c.at <= window.since
                )
            )


def _window(
    conn: SQL, windows: dict[str, _Window], grant_id: str, limit: RateLimit, now: float
) -> _Window:
    window = windows.get(grant_id)
    if window is None or window.limit != limit:
        since = now - limit.per_seconds
        count = _SQL[conn.dialect.name]["count"]
        stored = conn.exec_driver_sql(count, (grant_id, since)).scalar_one()
        window = _Window(grant_id, limit, since, int(stored), window.added if window else [])
        windows[grant_id] = window
    return window


def _spend(ledger: Ledger, admission: Admission) -> Exception | None:
    if admission.spend is not None:
        ledger.spend(admission.at, admission.spending, admission.spend)
        return None
    return ledger.use(admission.at, admission.spending)


def _rate_limited(conn: SQL, window: _Window, now: float) -> Exception:
    """429 with the whole seconds until enough hits have left the window for one more."""
    # The hit whose leaving frees a place: the (total - requests + 1)-th oldest in the window.
    index = window.stored + len(window.added) - window.limit.requests
    if index < window.stored:
        nth = _SQL[conn.dialect.name]["nth"]
        frees_at = conn.exec_driver_sql(nth, (window.grant_id, window.since, index)).scalar_one()
    else:
        frees_at = window.added[index - window.stored]
    wait = math.ceil(float(frees_at) + window.limit.per_seconds - now)
    decision = Decision(False, "rate_limit_exceeded", "rate_limit", max(1, wait))
    return denial_error(decision)


# The statements every batch may run, as driver SQL: building and caching Core statements cost
# more than executing these (see audit.sink). Built from constant names only.
def _statements(m: str) -> dict[str, str]:
    where = f"WHERE grant_id = {m} AND at > {m}"
    return {
        "count": f"SELECT count(*) FROM rate_hits {where}",  # noqa: S608
        "nth": f"SELECT at FROM rate_hits {where} ORDER BY at LIMIT 1 OFFSET {m}",  # noqa: S608
        "hit": f"INSERT INTO rate_hits (grant_id, at) VALUES ({m}, {m})",  # noqa: S608
    }


_SQL: Final = {"sqlite": _statements("?"), "postgresql": _statements("%s")}


def _insert_nonces(dialect: str, count: int) -> str:
    mark = "?" if dialect == "sqlite" else "%s"
    rows = ", ".join([f"({mark}, {mark})"] * count)
    return (
        f"INSERT INTO sdk_nonces (nonce, seen_at) VALUES {rows}"  # noqa: S608
        " ON CONFLICT DO NOTHING RETURNING nonce"
    )


def _flat(first: dict[str, float]) -> tuple[object, ...]:
    return tuple(value for pair in first.items() for value in pair)
