"""The alerter: one tick checks every rule and raises what is new, each alert exactly once.

An alert is remembered by a mark (``alert_marks.key``) inserted in the transaction that appends
its ``alert:*`` event: the key names the object and its window (``expiry:clone:<id>:<expiry>:
<lead>``), so a later tick, another node or a restart finds the mark and stays quiet.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from vaultgate.server.alerts.expiry import EXPIRY_SOURCES, Expiring
from vaultgate.server.audit import events as names
from vaultgate.server.audit.events import AuditEvent
from vaultgate.server.audit.queries import verify_chain
from vaultgate.server.audit.sink import AuditSink
from vaultgate.server.clock import Clock
from vaultgate.server.fleet import leases
from vaultgate.server.fleet.ticker import Ticker
from vaultgate.server.oauth.store import OAUTH_REFRESH
from vaultgate.server.sinks import outbox
from vaultgate.server.sinks.store import SinkStore
from vaultgate.server.storage import upsert
from vaultgate.server.storage.engine import reading
from vaultgate.server.storage.tables import alert_marks, audit_events

log = logging.getLogger("vaultgate.alerts")
LEASE = "alerts"


# Failed oauth:refresh events of the last hour are looked at, so a vault that restarts still
# alerts those it had not yet.
REFRESH_LOOKBACK = 3600


@dataclass(frozen=True, slots=True)
class AlertSettings:
    lead_seconds: int = 86400  # warn this long before a grant, clone or key expires
    interval_seconds: float = 10.0
    denial_spike_count: int = 20  # this many denials ...
    denial_spike_window: int = 60  # ... within this many seconds
    sink_lag_events: int = 1000
    sink_lag_seconds: float = 300.0
    verify_interval_seconds: float = 3600.0
    lease_seconds: float = 30.0


class Alerter:
    def __init__(
        self,
        engine: Engine,
        audit: AuditSink,
        audit_key: bytes,
        sinks: SinkStore,
        clock: Clock,
        settings: AlertSettings,
        *,
        wall: Callable[[], float] = time.monotonic,
    ) -> None:
        self._engine = engine
        self._audit = audit
        self._audit_key = audit_key
        self._sinks = sinks
        self._clock = clock
        self.settings = settings
        self._wall = wall
        self._verified_at: float | None = None
        self._ticker: Ticker | None = None
        self.owner = leases.owner_id()

    def __repr__(self) -> str:
        return "Alerter()"

    # --- the loop ---------------------------------------------------------------------------
    async def start(self) -> None:
        self._ticker = Ticker("alerts", self._tick_if_elected, self.settings.interval_seconds)
        self._ticker.start()

    async def stop(self) -> None:
        if self._ticker is not None:
            await self._ticker.stop()

    async def _tick_if_elected(self) -> None:
        if await asyncio.to_thread(self._claim):
            await asyncio.to_thread(self.tick)

    def _claim(self) -> bool:
        with self._engine.begin() as conn:
            return leases.claim(
                conn, LEASE, self.owner, now=time.time(), ttl=self.settings.lease_seconds
            )

    # --- one tick ---------------------------------------------------------------------------
    def tick(self) -> list[str]:
        """Check every rule once; the names of the alerts raised (for tests and logs)."""
        now = self._clock()
        raised = self._expiries(now) + self._denial_spike(now) + self._sink_lag(now)
        raised += self._refresh_failures(now)
        if self._verify_due():
            raised += self._verify(now)
        return raised

    def leads(self) -> list[int]:
        """The lead times in use: the setting's and every enabled sink's own."""
        own = {s.alert_lead_seconds for s in self._sinks.sinks(enabled_only=True)}
        return sorted({self.settings.lead_seconds} | {lead for lead in own if lead})

    def _expiries(self, now: datetime) -> list[str]:
        raised = []
        for lead in self.leads():
            horizon = now + timedelta(seconds=lead)
            with reading(self._engine) as conn:
                found = [item for source in EXPIRY_SOURCES for item in source(conn, now, horizon)]
            for item in found:
                mark = f"expiry:{item.kind}:{item.id}:{item.expires_at.isoformat()}:{lead}"
                if self._raise(mark, _expiry_event(item, lead, now)):
                    raised.append(names.ALERT_EXPIRY)
        return raised

    def _denial_spike(self, now: datetime) -> list[str]:
        window = self.settings.denial_spike_window
        since = now - timedelta(seconds=window)
        query = sa.select(sa.func.count()).where(
            audit_events.c.event == names.GRANT_DENY, audit_events.c.ts >= since
        )
        with reading(self._engine) as conn:
            count = int(conn.execute(query).scalar_one())
        if count < self.settings.denial_spike_count:
            return []
        bucket = int(now.timestamp() // window)
        event = _alert(
            names.ALERT_DENIAL_SPIKE,
            "denial_spike",
            now,
            details={"denials": count, "window_seconds": window},
        )
        return [names.ALERT_DENIAL_SPIKE] if self._raise(f"denial_spike:{bucket}", event) else []

    def _refresh_failures(self, now: datetime) -> list[str]:
        """An OAuth refresh that failed (refused, or the provider unreachable): alerted at the
        next tick, once per failed refresh, naming its grant and the failure's code."""
        since = now - timedelta(seconds=REFRESH_LOOKBACK)
        query = (
            sa.select(audit_events)
            .where(
                audit_events.c.event == OAUTH_REFRESH,
                audit_events.c.outcome == "error",
                audit_events.c.ts >= since,
            )
            .order_by(audit_events.c.seq)
            .limit(100)
        )
        with reading(self._engine) as conn:
            failed = [row._mapping for row in conn.execute(query)]
        raised = []
        for row in failed:
            event = _alert(
                names.ALERT_REFRESH_FAILED,
                "oauth_refresh_failed",
                now,
                app_id=row["app_id"],
                grant_id=row["grant_id"],
                secret_id=row["secret_id"],
                details={"refresh_event": row["id"], "refresh_code": row["code"]},
            )
            if self._raise(f"refresh_failed:{row['id']}", event):
                raised.append(names.ALERT_REFRESH_FAILED)
        return raised

    def _sink_lag(self, now: datetime) -> list[str]:
        raised = []
        for sink in self._sinks.sinks(enabled_only=True):
            with reading(self._engine) as conn:
                lag = outbox.lag(conn, sink.cursor, now)
            mark = f"sink_lag:{sink.id}"
            behind = (
                lag.events > self.settings.sink_lag_events
                or lag.seconds > self.settings.sink_lag_seconds
            )
            if not behind:
                self._forget(mark)  # the episode is over: the next one alerts again
                continue
            details = {
                "sink": sink.name,
                "lag_events": lag.events,
                "lag_seconds": round(lag.seconds, 3),
                "last_error": sink.last_error,
            }
            if self._raise(mark, _alert(names.ALERT_SINK_LAG, "sink_behind", now, details=details)):
                raised.append(names.ALERT_SINK_LAG)
        return raised

    def _verify_due(self) -> bool:
        at = self._wall()
        if (
            self._verified_at is not None
            and at - self._verified_at < self.settings.verify_interval_seconds
        ):
            return False
        self._verified_at = at
        return True

    def _verify(self, now: datetime) -> list[str]:
        report = verify_chain(self._engine, self._audit_key)
        if report.ok:
            return []
        details = {"first_bad_seq": report.first_bad_seq, "problem": report.problem}
        event = _alert(names.ALERT_VERIFY_FAILED, "audit_chain_broken", now, details=details)
        mark = f"verify_failed:{report.first_bad_seq}"
        return [names.ALERT_VERIFY_FAILED] if self._raise(mark, event) else []

    # --- marks ------------------------------------------------------------------------------
    def _raise(self, mark: str, event: AuditEvent) -> bool:
        """Append ``event`` unless ``mark`` exists; both in one transaction."""
        with reading(self._engine) as conn:
            if _marked(conn, mark):
                return False
        with self._engine.begin() as conn:
            values = {"key": mark[:255], "created_at": event.ts}
            insert = upsert.insert(conn, alert_marks).values(values).on_conflict_do_nothing()
            if conn.execute(insert).rowcount != 1:
                return False
            self._audit.append(conn, event)
        log.warning("alert %s raised (%s)", event.event, event.code)
        return True

    def _forget(self, mark: str) -> None:
        with reading(self._engine) as conn:
            if not _marked(conn, mark):
                return
        with self._engine.begin() as conn:
            conn.execute(sa.delete(alert_marks).where(alert_marks.c.key == mark))


def _marked(conn: Connection, mark: str) -> bool:
    query = sa.select(alert_marks.c.key).where(alert_marks.c.key == mark[:255])
    return conn.execute(query).first() is not None


def _alert(event: str, code: str, now: datetime, **fields: Any) -> AuditEvent:
    outcome = "ok" if event == names.ALERT_EXPIRY else "error"
    return AuditEvent.new(event=event, outcome=outcome, code=code, now=now, **fields)


def _expiry_event(item: Expiring, lead: int, now: datetime) -> AuditEvent:
    details = {
        "object": item.kind,
        "id": item.id,
        "expires_at": item.expires_at.isoformat(),
        "expires_in_seconds": int((item.expires_at - now).total_seconds()),
        "lead_seconds": lead,
    }
    return _alert(
        names.ALERT_EXPIRY,
        f"{item.kind}_expiring",
        now,
        app_id=item.app_id,
        grant_id=item.grant_id,
        secret_id=item.secret_id,
        key_id=item.key_id,
        details=details,
    )
