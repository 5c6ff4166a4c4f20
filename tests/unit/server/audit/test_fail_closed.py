"""The trail fails closed on a real full disk and a real lost database, then recovers alone."""

import asyncio
import os
from collections.abc import Iterator

import psycopg
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from vaultgate.server.audit.events import ALLOWED, GRANT_OUTCOME, GRANT_USE, OK, AuditEvent
from vaultgate.server.audit.queries import verify_chain
from vaultgate.server.audit.writer import AuditWriter
from vaultgate.server.errors import Unavailable
from vaultgate.server.storage.engine import create_engine, migrate
from vaultgate.server.storage.tables import audit_events

PG_ADMIN_URL = os.environ.get("VAULTGATE_TEST_PG", "postgresql://root@127.0.0.1:5432/postgres")
UNLIMITED = 1_073_741_823


def _use(i: int) -> AuditEvent:
    return AuditEvent.new(event=GRANT_USE, outcome=ALLOWED, reason=f"{i} " + "r" * 1000)


def _count(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(audit_events)).scalar_one())


def _ids(engine: Engine) -> set[str]:
    with engine.connect() as conn:
        return set(conn.execute(sa.select(audit_events.c.id)).scalars())


class PageCap:
    """``PRAGMA max_page_count`` at the start of every transaction (the limit is per
    connection, and the writer keeps its connection across batches), so the writer's next
    transaction sees the database as full, or not."""

    def __init__(self, engine: Engine) -> None:
        self.pages = UNLIMITED
        sa.event.listen(engine, "begin", self._apply)

    def _apply(self, conn: sa.Connection) -> None:
        conn.connection.driver_connection.execute(f"PRAGMA max_page_count = {int(self.pages)}")

    def fill_to_current_size(self, engine: Engine) -> None:
        with engine.connect() as conn:
            self.pages = int(conn.exec_driver_sql("PRAGMA page_count").scalar_one())


@pytest.fixture
def sqlite_engine(sqlite_url: str) -> Iterator[Engine]:
    engine = create_engine(sqlite_url)
    migrate(engine)
    yield engine
    engine.dispose()


async def _record_until_refused(writer: AuditWriter, tries: int = 500) -> int:
    """How many more records the store took before it refused one with a 503."""
    for i in range(tries):
        try:
            await writer.record(_use(i))
        except Unavailable as exc:
            refusal = exc
            break
    else:
        raise AssertionError("the database never filled up")
    assert refusal.code == "audit_unavailable"
    assert refusal.status == 503
    return i


async def test_a_full_sqlite_database_refuses_then_recovers(
    sqlite_engine: Engine, audit_key: bytes
) -> None:
    cap = PageCap(sqlite_engine)
    writer = AuditWriter(sqlite_engine, audit_key)
    writer.start()
    try:
        await writer.record(_use(-1))
        cap.fill_to_current_size(sqlite_engine)
        stored_before = 1 + await _record_until_refused(writer)
        assert _count(sqlite_engine) == stored_before

        # Everyone waiting on a failed batch is refused; nothing of theirs is stored.
        results = await asyncio.gather(
            *(writer.record(_use(i)) for i in range(20)), return_exceptions=True
        )
        assert all(isinstance(result, Unavailable) for result in results)
        assert _count(sqlite_engine) == stored_before
        assert verify_chain(sqlite_engine, audit_key).ok

        cap.pages = UNLIMITED
        await writer.record(_use(10_000))
    finally:
        writer.stop()
    report = verify_chain(sqlite_engine, audit_key)
    assert report.ok
    assert report.events == stored_before + 1


async def test_fire_and_forget_events_survive_a_full_disk(
    sqlite_engine: Engine, audit_key: bytes
) -> None:
    cap = PageCap(sqlite_engine)
    writer = AuditWriter(sqlite_engine, audit_key)
    writer.start()
    await writer.record(_use(-1))
    cap.fill_to_current_size(sqlite_engine)
    await _record_until_refused(writer)
    outcome = AuditEvent.new(event=GRANT_OUTCOME, outcome=OK, reason="o" * 2000, latency_ms=12)
    writer.submit(outcome)
    await _record_until_refused(writer, tries=1)  # queued after the outcome: it failed too
    assert outcome.id not in _ids(sqlite_engine)
    cap.pages = UNLIMITED
    writer.stop()  # drains: the retained outcome gets its last try against a writable store
    assert outcome.id in _ids(sqlite_engine)
    assert verify_chain(sqlite_engine, audit_key).ok


def _allow_connections(dbname: str, allowed: bool) -> None:
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'ALTER DATABASE "{dbname}" ALLOW_CONNECTIONS {str(allowed).lower()}')
        if not allowed:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                (dbname,),
            )


@pytest.mark.postgres
async def test_postgres_made_unavailable_refuses_then_recovers(
    pg_url: str, audit_key: bytes
) -> None:
    dbname = pg_url.rsplit("/", 1)[1]
    engine = create_engine(pg_url)
    migrate(engine)
    writer = AuditWriter(engine, audit_key)
    writer.start()
    try:
        await writer.record(_use(1))
        _allow_connections(dbname, False)
        try:
            with pytest.raises(Unavailable):
                await writer.record(_use(2))
            results = await asyncio.gather(
                *(writer.record(_use(i)) for i in range(10)), return_exceptions=True
            )
            assert all(isinstance(result, Unavailable) for result in results)
        finally:
            _allow_connections(dbname, True)
        await writer.record(_use(3))
        writer.stop()
        report = verify_chain(engine, audit_key)
    finally:
        writer.stop()
        engine.dispose()
    assert report.ok
    assert report.events == 2


async def test_retained_events_are_stored_once_the_store_is_back(
    sqlite_engine: Engine, audit_key: bytes
) -> None:
    cap = PageCap(sqlite_engine)
    writer = AuditWriter(sqlite_engine, audit_key)
    writer.start()
    try:
        await writer.record(_use(-1))
        cap.fill_to_current_size(sqlite_engine)
        await _record_until_refused(writer)
        # As large as the uses the full store refused, so it cannot squeeze into a free slot.
        outcome = AuditEvent.new(event=GRANT_OUTCOME, outcome=OK, reason="o" * 2000)
        writer.submit(outcome)
        await _record_until_refused(writer, tries=1)  # queued after the outcome: it failed too
        assert outcome.id not in _ids(sqlite_engine)
        assert writer.stats.dropped == 0
        cap.pages = UNLIMITED
        # The first success makes retries due; they go in the very next batch, so by the time
        # a second record is durable the retained outcome is as well (without stopping).
        await writer.record(_use(1))
        await writer.record(_use(2))
        assert outcome.id in _ids(sqlite_engine)
    finally:
        writer.stop()
    assert verify_chain(sqlite_engine, audit_key).ok
