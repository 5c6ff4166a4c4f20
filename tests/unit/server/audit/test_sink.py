"""The driver-level insert of `sink.append` stores exactly what SQLAlchemy Core would.

Each case writes one event through `append` and its twin (same values, other id and seq) through
an ordinary Core insert of the sealed row, then compares the stored columns as the database
holds them (text of ts and details), on SQLite and PostgreSQL.
"""

from __future__ import annotations

import dataclasses
import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from vaultgate.server.audit.chain import seal
from vaultgate.server.audit.events import ALLOWED, GRANT_USE, AuditEvent
from vaultgate.server.audit.queries import verify_chain
from vaultgate.server.audit.sink import COLUMNS, append, lock_head
from vaultgate.server.storage.tables import audit_events

DETAILS: list[dict[str, Any] | None] = [
    None,
    {},
    {"text": 'é\u2028\\ "q"', "list": [1, 2.5, None, True], "nested": {"b": -3, "a": "x"}},
]
TIMES = [
    datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
    datetime(2026, 1, 2, 3, 4, 5, 123, tzinfo=timezone(timedelta(hours=-7))),
]


def _raw(engine: Engine, seq: int) -> tuple[Any, ...]:
    """ts and details as the database holds them, then every other column."""
    if engine.dialect.name == "sqlite":
        stored = "ts, typeof(ts), details, typeof(details)"
    else:
        stored = "ts::text, pg_typeof(ts)::text, details::text, details IS NULL"
    chained = ("seq", "id", "ts", "details", "prev_hash", "hash", "mac")
    others = [name for name in COLUMNS if name not in chained]
    query = f"SELECT {stored}, {', '.join(others)} FROM audit_events WHERE seq = {seq}"
    with engine.connect() as conn:
        return tuple(conn.exec_driver_sql(query).one())


def _event(now: datetime, details: dict[str, Any] | None) -> AuditEvent:
    return AuditEvent.new(
        event=GRANT_USE,
        outcome=ALLOWED,
        now=now,
        reason="r\\é",
        url="https://api.example.com/v1?q=ü",
        upstream_status=201,
        latency_ms=7,
        details=details,
    )


@pytest.mark.parametrize("now", TIMES)
@pytest.mark.parametrize("details", DETAILS)
def test_append_stores_what_a_core_insert_stores(
    engine: Engine, audit_key: bytes, now: datetime, details: dict[str, Any] | None
) -> None:
    event = _event(now, details)
    with engine.begin() as conn:
        head = append(conn, [event], audit_key, lock_head(conn, audit_key))
    twin = dataclasses.replace(event, id=str(uuid.uuid4()))
    with engine.begin() as conn:
        conn.execute(audit_events.insert(), [seal(twin, seq=99, prev_hash=head.hash, key=b"x")])
    assert _raw(engine, head.seq) == _raw(engine, 99)


def test_appended_rows_read_back_as_written_and_verify(engine: Engine, audit_key: bytes) -> None:
    events = [_event(now, details) for now in TIMES for details in DETAILS]
    with engine.begin() as conn:
        append(conn, events, audit_key, lock_head(conn, audit_key))
    with engine.connect() as conn:
        rows = conn.execute(sa.select(audit_events).order_by(audit_events.c.seq)).all()
    assert [row.id for row in rows] == [event.id for event in events]
    assert [row.ts for row in rows] == [event.ts for event in events]
    assert [row.details for row in rows] == [event.details for event in events]
    assert verify_chain(engine, audit_key).ok


def test_an_edit_of_an_appended_row_is_still_found(engine: Engine, audit_key: bytes) -> None:
    events = [_event(TIMES[0], {"i": i}) for i in range(3)]
    with engine.begin() as conn:
        append(conn, events, audit_key, lock_head(conn, audit_key))
        conn.execute(
            sa.update(audit_events).where(audit_events.c.seq == 2).values(details={"i": 9})
        )
    report = verify_chain(engine, audit_key)
    assert not report.ok
    assert report.first_bad_seq == 2


def test_the_insert_names_every_column_of_the_table() -> None:
    assert sorted(COLUMNS) == sorted(column.name for column in audit_events.columns)
