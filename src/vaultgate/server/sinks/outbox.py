"""The audit table read as each sink's outbox: a cursor, guarded moves, and the sink's lag.

Events are never copied. A sink's ``cursor`` is the last seq it has delivered; the next batch is
simply ``seq > cursor`` in seq order. That is gap-free and in commit order because every append
holds the chain head lock until it commits (audit/sink.py), so a reader never sees seq N+1 before
seq N. The cursor moves only after the receiver acknowledged, only forward, and only while this
process holds the sink's lease: at-least-once, in order, whatever dies when.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from vaultgate.server.audit.queries import event_to_dict
from vaultgate.server.fleet import leases
from vaultgate.server.storage.engine import reading
from vaultgate.server.storage.tables import audit_events, audit_sinks, secrets

ERROR_CAP: Final = 500


def lease_name(sink_id: str) -> str:
    return f"sink:{sink_id}"


@dataclass(frozen=True, slots=True)
class Lag:
    events: int
    seconds: float


def head_seq(conn: Connection) -> int:
    return int(conn.execute(sa.select(sa.func.max(audit_events.c.seq))).scalar() or 0)


def lag(conn: Connection, cursor: int, now: datetime) -> Lag:
    """Events after ``cursor`` and the age of the oldest of them (0 when caught up)."""
    behind = head_seq(conn) - cursor
    if behind <= 0:
        return Lag(0, 0.0)
    oldest = conn.execute(
        sa.select(audit_events.c.ts).where(audit_events.c.seq == cursor + 1)
    ).scalar()
    age = (now - oldest).total_seconds() if oldest is not None else 0.0
    return Lag(behind, max(0.0, age))


def batch(engine: Engine, cursor: int, limit: int) -> list[dict[str, Any]]:
    """The next ``limit`` events after ``cursor``, oldest first, each with its secret's provider."""
    query = (
        sa.select(audit_events, secrets.c.provider)
        .select_from(audit_events.outerjoin(secrets, secrets.c.id == audit_events.c.secret_id))
        .where(audit_events.c.seq > cursor)
        .order_by(audit_events.c.seq)
        .limit(limit)
    )
    with reading(engine) as conn:
        rows = conn.execute(query).all()
    return [_with_provider(row._mapping) for row in rows]


def _with_provider(row: Mapping[Any, Any]) -> dict[str, Any]:
    event = event_to_dict(row)
    event["provider"] = row["provider"]
    return event


def claim(engine: Engine, sink_id: str, owner: str, *, now: float, ttl: float) -> bool:
    with engine.begin() as conn:
        return leases.claim(conn, lease_name(sink_id), owner, now=now, ttl=ttl)


def advance(engine: Engine, sink_id: str, owner: str, cursor: int, now: datetime) -> bool:
    """Record delivery up to ``cursor``; False when the lease was lost (nothing changes)."""
    where = [
        audit_sinks.c.id == sink_id,
        audit_sinks.c.cursor < cursor,
        leases.holds(lease_name(sink_id), owner),
    ]
    values = {
        "cursor": cursor,
        "attempts": 0,
        "last_error": None,
        "next_attempt_at": 0.0,
        "delivered_at": now,
    }
    with engine.begin() as conn:
        return conn.execute(sa.update(audit_sinks).where(*where).values(values)).rowcount == 1


def failed(engine: Engine, sink_id: str, owner: str, error: str, retry_at: float) -> None:
    """Count a failed attempt; the cursor stays where it is, so the same events come next."""
    where = [audit_sinks.c.id == sink_id, leases.holds(lease_name(sink_id), owner)]
    values = {
        "attempts": audit_sinks.c.attempts + 1,
        "last_error": error[:ERROR_CAP],
        "next_attempt_at": retry_at,
    }
    with engine.begin() as conn:
        conn.execute(sa.update(audit_sinks).where(*where).values(values))


def utc(value: float) -> datetime:
    return datetime.fromtimestamp(value, UTC)
