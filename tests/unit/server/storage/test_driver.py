"""`DriverSQL`: the audit writer's statements on the driver's cursor read as SQLAlchemy's would.

Each case runs the same statement through SQLAlchemy's ``exec_driver_sql`` and through
`DriverSQL` on the same connection, on SQLite and on PostgreSQL, and compares what comes back.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from vaultgate.server.audit.events import AuditEvent
from vaultgate.server.audit.writer import AuditWriter
from vaultgate.server.storage.driver import DriverSQL
from vaultgate.server.storage.engine import create_engine, migrate

CANARY = "canary-driver-param-7Qx"


@pytest.fixture
def conn(engine: Engine) -> Iterator[Connection]:
    with engine.begin() as connection:
        yield connection


def _mark(conn: Connection) -> str:
    return "?" if conn.dialect.name == "sqlite" else "%s"


def _both(conn: Connection, sql: str, params: Any, read: str) -> tuple[Any, Any]:
    """What ``read`` gives through SQLAlchemy and through the driver for the same statement."""

    def take(result: Any) -> Any:
        value = getattr(result, read)()
        return value.all() if read == "scalars" else value

    ours = take(DriverSQL(conn).exec_driver_sql(sql, params))
    theirs = take(conn.exec_driver_sql(sql, params))
    return ours, theirs


def test_reads_match_sqlalchemys(conn: Connection) -> None:
    m = _mark(conn)
    rows = [(f"k{i}", str(i)) for i in range(3)]
    DriverSQL(conn).exec_driver_sql(f"INSERT INTO meta (key, value) VALUES ({m}, {m})", rows)
    select_one = f"SELECT value FROM meta WHERE key = {m}"
    select_some = f"SELECT value FROM meta WHERE key IN ({m}, {m}) ORDER BY key"
    for sql, params, read in [
        (select_one, ("k1",), "scalar_one"),
        (select_one, ("k2",), "scalar_one_or_none"),
        (select_one, ("absent",), "scalar_one_or_none"),
        (select_one, ("k0",), "first"),
        (select_one, ("absent",), "first"),
        (select_some, ("k0", "k2"), "scalars"),
    ]:
        ours, theirs = _both(conn, sql, params, read)
        assert (
            ours == theirs
            if read != "first"
            else (ours and tuple(ours)) == (theirs and tuple(theirs))
        )


def test_rowcount_and_many_rows(conn: Connection) -> None:
    m = _mark(conn)
    sql = DriverSQL(conn)
    sql.exec_driver_sql(
        f"INSERT INTO meta (key, value) VALUES ({m}, {m})", [("a", "1"), ("b", "2")]
    )
    updated = sql.exec_driver_sql(f"UPDATE meta SET value = {m} WHERE key IN ('a', 'b')", ("3",))
    assert updated.rowcount == 2
    values = conn.exec_driver_sql("SELECT value FROM meta WHERE key IN ('a', 'b')").scalars()
    assert list(values) == ["3", "3"]


def test_one_row_is_required_where_one_is_expected(conn: Connection) -> None:
    m = _mark(conn)
    sql = DriverSQL(conn)
    sql.exec_driver_sql(
        f"INSERT INTO meta (key, value) VALUES ({m}, {m})", [("x", "1"), ("y", "1")]
    )
    both = f"SELECT value FROM meta WHERE value = {m}"
    with pytest.raises(sa.exc.NoResultFound):
        sql.exec_driver_sql(both, ("none",)).scalar_one()
    with pytest.raises(sa.exc.MultipleResultsFound):
        sql.exec_driver_sql(both, ("1",)).scalar_one()
    with pytest.raises(sa.exc.MultipleResultsFound):
        sql.exec_driver_sql(both, ("1",)).scalar_one_or_none()


def test_a_driver_error_is_sqlalchemys_without_the_values(conn: Connection) -> None:
    m = _mark(conn)
    sql = DriverSQL(conn)
    sql.exec_driver_sql(f"INSERT INTO meta (key, value) VALUES ({m}, {m})", ("dup", "1"))
    with pytest.raises(sa.exc.IntegrityError) as caught:
        sql.exec_driver_sql(f"INSERT INTO meta (key, value) VALUES ({m}, {m})", ("dup", CANARY))
    assert CANARY not in str(caught.value)
    assert CANARY not in repr(caught.value)


def test_core_statements_go_through_sqlalchemy(conn: Connection) -> None:
    from vaultgate.server.storage.tables import meta

    sql = DriverSQL(conn)
    sql.execute(meta.insert().values(key="core", value="1"))
    assert sql.dialect is conn.dialect
    assert conn.exec_driver_sql("SELECT value FROM meta WHERE key = 'core'").scalar_one() == "1"


def _use(i: int) -> AuditEvent:
    return AuditEvent.new(event="grant:use", outcome="allowed", app_id="app", code=f"c{i}")


def test_on_sqlite_the_writer_keeps_one_connection_across_batches(sqlite_url: str) -> None:
    engine = create_engine(sqlite_url)
    migrate(engine)
    checkouts: list[object] = []
    sa.event.listen(engine, "checkout", lambda *args: checkouts.append(args[0]))
    writer = AuditWriter(engine, b"k" * 32)
    writer.start()
    try:
        for i in range(20):
            writer.record_sync(_use(i))  # one batch each: the caller waits for every commit
    finally:
        writer.stop()
    writer_checkouts = len(checkouts)
    with engine.connect() as conn:
        stored = conn.exec_driver_sql("SELECT count(*) FROM audit_events").scalar_one()
    engine.dispose()
    assert stored == 20
    assert writer.stats.batches == 20
    assert writer_checkouts == 1


def test_a_begin_that_cannot_take_the_lock_raises_sqlalchemys_error(sqlite_url: str) -> None:
    """The write lock held past busy_timeout: an OperationalError, which the store maps to 503."""
    engine = create_engine(sqlite_url)
    migrate(engine)
    # After the engine's own pragmas: give up on the lock at once instead of after 10 s.
    sa.event.listen(engine, "connect", lambda dbapi, _: dbapi.execute("PRAGMA busy_timeout=0"))
    engine.dispose()
    holder = sqlite3.connect(sqlite_url.removeprefix("sqlite:///"), isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(sa.exc.OperationalError) as caught, engine.begin():
            pass
        assert "locked" in str(caught.value.orig)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
        engine.dispose()
    with engine.begin() as conn:  # the lock released, the next transaction begins
        assert conn.exec_driver_sql("SELECT count(*) FROM meta").scalar_one() >= 0
    engine.dispose()
