"""Extending the chain inside a transaction: the head lock and the append both writers share.

The group-commit writer uses them for its batches; ``AuditSink`` lets a service append the record
of an administrative change in the change's own transaction, so both commit or neither does.
Either way the head row is locked first, so every append joins one gap-free chain.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from vaultgate.server.audit.chain import HEAD_KEY, Head, chain_values
from vaultgate.server.audit.events import EVENT_FIELDS, AuditEvent
from vaultgate.server.fleet import changes
from vaultgate.server.storage import upsert
from vaultgate.server.storage.driver import SQL
from vaultgate.server.storage.tables import audit_events, meta


class ChainHeadMissing(RuntimeError):
    """Events exist but ``meta.audit_head`` does not: restarting at seq 1 would hide tampering."""


def lock_head(conn: SQL, key: bytes) -> Head:
    """Lock and read the chain head in ``conn``'s transaction, creating it for an empty trail.

    FOR UPDATE serialises appenders across nodes on PostgreSQL; on SQLite (no FOR UPDATE)
    BEGIN IMMEDIATE (see storage.engine) already holds the database's write lock.
    """
    select_head = _SELECT_HEAD[conn.dialect.name]
    value = conn.exec_driver_sql(select_head, (HEAD_KEY,)).scalar_one_or_none()
    if value is None:
        # Insert first: on PostgreSQL it waits for another node creating the head at the same
        # moment. Only when OUR genesis row went in can existing events mean a deleted head.
        created = conn.execute(_insert_head_if_absent(conn, Head.genesis(key))).rowcount == 1
        if created and conn.execute(sa.select(audit_events.c.seq).limit(1)).first() is not None:
            raise ChainHeadMissing("audit events exist but the chain head is missing")
        value = conn.exec_driver_sql(select_head, (HEAD_KEY,)).scalar_one()
    return Head.parse(value)


# Every batch locks, reads and moves the head: as driver SQL these skip building and caching a
# Core statement each time (about 100 us a batch, when batches are a few events each).
_SELECT_HEAD: Final = {
    "sqlite": "SELECT value FROM meta WHERE key = ?",
    "postgresql": "SELECT value FROM meta WHERE key = %s FOR UPDATE",
}
_UPDATE_HEAD: Final = {
    "sqlite": "UPDATE meta SET value = ? WHERE key = ?",
    "postgresql": "UPDATE meta SET value = %s WHERE key = %s",
}


def _insert_head_if_absent(conn: SQL, head: Head) -> Any:
    # ON CONFLICT DO NOTHING: two nodes creating the first head at once must not fail a batch.
    values = {"key": HEAD_KEY, "value": head.dump()}
    return upsert.insert(conn, meta).values(values).on_conflict_do_nothing()


# The insert goes to the driver as one prepared statement over tuples: SQLAlchemy Core with a
# dict per row cost about 25 us per event (bind processing, key matching), twice the sealing.
# The values are converted here exactly as the column types would (see `_ts`, `_details`), so
# rows read back and verify the same whichever path wrote them.
COLUMNS: Final[tuple[str, ...]] = ("seq", *EVENT_FIELDS, "prev_hash", "hash", "mac")
_TS_AT: Final = COLUMNS.index("ts")
_DETAILS_AT: Final = COLUMNS.index("details")


def _insert_sql(dialect: str) -> str:
    marks = ["?"] * len(COLUMNS) if dialect == "sqlite" else ["%s"] * len(COLUMNS)
    if dialect != "sqlite":
        # psycopg would send text; the json column takes it through an explicit cast.
        marks[_DETAILS_AT] = "CAST(%s AS json)"
    # Built once at import from constant names: nothing a caller sends reaches this text.
    columns, values = ", ".join(COLUMNS), ", ".join(marks)
    return f"INSERT INTO {audit_events.name} ({columns}) VALUES ({values})"  # noqa: S608


_INSERT: Final = {dialect: _insert_sql(dialect) for dialect in ("sqlite", "postgresql")}


def _ts(value: datetime, dialect: str) -> datetime | str:
    utc = value.astimezone(UTC)
    if dialect == "sqlite":
        # SQLAlchemy's SQLite DATETIME text, which UTCDateTime reads back.
        return utc.replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")
    return utc  # psycopg adapts an aware datetime to timestamptz itself


def _details(value: dict[str, Any] | None) -> str:
    # sa.JSON's own serialisation: json.dumps with its defaults, and None as JSON null.
    return "null" if value is None else json.dumps(value)


def _row(
    values: tuple[Any, ...], seq: int, prev: str, sealed: tuple[str, str], dialect: str
) -> tuple[Any, ...]:
    row = [seq, *values, prev, *sealed]
    row[_TS_AT] = _ts(row[_TS_AT], dialect)
    row[_DETAILS_AT] = _details(row[_DETAILS_AT])
    return tuple(row)


def append(conn: SQL, events: Sequence[AuditEvent], key: bytes, head: Head) -> Head:
    """Insert ``events`` after ``head`` (already locked by the caller); returns the new head."""
    if not events:
        return head
    dialect = conn.dialect.name
    seq, prev, rows = head.seq, head.hash, []
    for event in events:
        seq += 1
        values = event.values()
        sealed = chain_values(values, seq=seq, prev_hash=prev, key=key)
        rows.append(_row(values, seq, prev, sealed, dialect))
        prev = sealed[0]
    # exec_driver_sql, not the raw cursor: errors still arrive as SQLAlchemy's DBAPIError
    # (503 upstream) and a dropped PostgreSQL connection is still invalidated in the pool.
    conn.exec_driver_sql(_INSERT[dialect], rows)
    new_head = Head.make(seq, prev, key)
    conn.exec_driver_sql(_UPDATE_HEAD[dialect], (new_head.dump(), HEAD_KEY))
    return new_head


class AuditSink:
    """What the services write administrative events through, inside their own transaction."""

    def __init__(self, key: bytes) -> None:
        self._key = key

    def __repr__(self) -> str:
        return "AuditSink(key=**********)"

    def append(self, conn: Connection, event: AuditEvent) -> None:
        append(conn, [event], self._key, lock_head(conn, self._key))
        if event.event in changes.INVALIDATING:
            # Under the head lock just taken: a use batch on any node that locks the head after
            # this commits sees the new count and refuses to record on an older view.
            changes.bump(conn)
