"""Extending the chain inside a transaction: the head lock and the append both writers share.

The group-commit writer uses them for its batches; ``AuditSink`` lets a service append the record
of an administrative change in the change's own transaction, so both commit or neither does.
Either way the head row is locked first, so every append joins one gap-free chain.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from vaultgate.server.audit.chain import HEAD_KEY, Head, seal
from vaultgate.server.audit.events import AuditEvent
from vaultgate.server.storage.tables import audit_events, meta


class ChainHeadMissing(RuntimeError):
    """Events exist but ``meta.audit_head`` does not: restarting at seq 1 would hide tampering."""


def lock_head(conn: Connection, key: bytes) -> Head:
    """Lock and read the chain head in ``conn``'s transaction, creating it for an empty trail.

    FOR UPDATE serialises appenders across nodes on PostgreSQL; SQLite's compiler drops it, and
    BEGIN IMMEDIATE (see storage.engine) already holds the database's write lock.
    """
    select_head = sa.select(meta.c.value).where(meta.c.key == HEAD_KEY).with_for_update()
    value = conn.execute(select_head).scalar_one_or_none()
    if value is None:
        # Insert first: on PostgreSQL it waits for another node creating the head at the same
        # moment. Only when OUR genesis row went in can existing events mean a deleted head.
        created = conn.execute(_insert_head_if_absent(conn, Head.genesis(key))).rowcount == 1
        if created and conn.execute(sa.select(audit_events.c.seq).limit(1)).first() is not None:
            raise ChainHeadMissing("audit events exist but the chain head is missing")
        value = conn.execute(select_head).scalar_one()
    return Head.parse(value)


def _insert_head_if_absent(conn: Connection, head: Head) -> Any:
    # ON CONFLICT DO NOTHING: two nodes creating the first head at once must not fail a batch.
    values = {"key": HEAD_KEY, "value": head.dump()}
    if conn.dialect.name == "postgresql":
        return postgresql.insert(meta).values(values).on_conflict_do_nothing()
    return sqlite.insert(meta).values(values).on_conflict_do_nothing()


def append(conn: Connection, events: Sequence[AuditEvent], key: bytes, head: Head) -> Head:
    """Insert ``events`` after ``head`` (already locked by the caller); returns the new head."""
    if not events:
        return head
    seq, prev, rows = head.seq, head.hash, []
    for event in events:
        seq += 1
        row = seal(event, seq=seq, prev_hash=prev, key=key)
        rows.append(row)
        prev = row["hash"]
    conn.execute(audit_events.insert(), rows)
    new_head = Head.make(seq, prev, key)
    conn.execute(meta.update().where(meta.c.key == HEAD_KEY).values(value=new_head.dump()))
    return new_head


class AuditSink:
    """What the services write administrative events through, inside their own transaction."""

    def __init__(self, key: bytes) -> None:
        self._key = key

    def __repr__(self) -> str:
        return "AuditSink(key=**********)"

    def append(self, conn: Connection, event: AuditEvent) -> None:
        append(conn, [event], self._key, lock_head(conn, self._key))
