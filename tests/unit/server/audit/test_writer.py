import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from support.audit import wait_until
from vaultgate.server.audit.events import ALLOWED, GRANT_OUTCOME, GRANT_USE, OK, AuditEvent
from vaultgate.server.audit.queries import verify_chain
from vaultgate.server.audit.sink import AuditSink, lock_head
from vaultgate.server.audit.writer import AuditWriter
from vaultgate.server.errors import Unavailable
from vaultgate.server.storage.engine import create_engine
from vaultgate.server.storage.tables import audit_events, meta


def _event(i: int, name: str = GRANT_USE) -> AuditEvent:
    return AuditEvent.new(event=name, outcome=ALLOWED if name == GRANT_USE else OK, reason=f"#{i}")


def _stored(engine: Engine) -> list[tuple[int, str]]:
    query = sa.select(audit_events.c.seq, audit_events.c.id).order_by(audit_events.c.seq)
    with engine.connect() as conn:
        return [(row.seq, row.id) for row in conn.execute(query)]


async def test_1000_concurrent_tasks_get_a_gap_free_chain_in_enqueue_order(
    engine: Engine, writer: AuditWriter, audit_key: bytes
) -> None:
    events = [_event(i) for i in range(1000)]
    await asyncio.gather(*(writer.record(event) for event in events))
    stored = _stored(engine)
    assert [seq for seq, _ in stored] == list(range(1, 1001))
    # Each task enqueues before its first await, so seq order is creation order.
    assert [id_ for _, id_ in stored] == [event.id for event in events]
    assert writer.stats.batches < 1000
    assert verify_chain(engine, audit_key).ok


def test_1000_records_from_threads_get_a_gap_free_chain(
    engine: Engine, writer: AuditWriter, audit_key: bytes
) -> None:
    events = [_event(i) for i in range(1000)]
    with ThreadPoolExecutor(max_workers=32) as pool:
        list(pool.map(writer.record_sync, events))
    stored = _stored(engine)
    assert [seq for seq, _ in stored] == list(range(1, 1001))
    assert sorted(id_ for _, id_ in stored) == sorted(event.id for event in events)
    report = verify_chain(engine, audit_key)
    assert report.ok
    assert report.events == 1000


def test_events_queued_behind_a_busy_store_commit_together_in_order(
    engine: Engine, writer: AuditWriter, audit_key: bytes
) -> None:
    writer.record_sync(_event(-1))  # creates the head row, so it can be locked below
    before = writer.stats.batches
    events = [_event(i) for i in range(100)]
    with engine.begin() as blocker:
        lock_head(blocker, audit_key)  # another node holding the chain
        for event in events:
            writer.submit(event)
    writer.stop()
    # At most one batch was already waiting for the lock; everything else came in one more.
    assert writer.stats.batches - before <= 2
    assert [id_ for _, id_ in _stored(engine)][1:] == [event.id for event in events]


async def test_two_writers_on_one_database_share_one_chain(
    db_url: str, engine: Engine, audit_key: bytes
) -> None:
    other = create_engine(db_url)
    # Small batches, so the two nodes' transactions overlap many times.
    writers = [AuditWriter(e, audit_key, max_batch=5) for e in (engine, other)]
    for w in writers:
        w.start()
    try:
        await asyncio.gather(*(writers[i % 2].record(_event(i)) for i in range(400)))
    finally:
        for w in writers:
            w.stop()
        other.dispose()
    assert [seq for seq, _ in _stored(engine)] == list(range(1, 401))
    assert verify_chain(engine, audit_key).ok


def test_sink_appends_in_the_callers_transaction(
    engine: Engine, writer: AuditWriter, audit_key: bytes
) -> None:
    sink = AuditSink(audit_key)
    writer.record_sync(_event(1))
    with engine.begin() as conn:
        sink.append(conn, AuditEvent.new(event="app:create", outcome=OK))

    def failing_change() -> None:
        with engine.begin() as conn:
            sink.append(conn, AuditEvent.new(event="app:create", outcome=OK, reason="undone"))
            raise RuntimeError("the change failed")

    with pytest.raises(RuntimeError):
        failing_change()
    writer.record_sync(_event(2))
    assert [seq for seq, _ in _stored(engine)] == [1, 2, 3]
    assert verify_chain(engine, audit_key).ok
    assert "**" in repr(sink)


def test_stop_drains_fire_and_forget_events(engine: Engine, writer: AuditWriter) -> None:
    events = [_event(i, GRANT_OUTCOME) for i in range(250)]
    for event in events:
        writer.submit(event)
    writer.stop()
    assert [id_ for _, id_ in _stored(engine)] == [event.id for event in events]


async def test_an_outcome_waits_for_the_next_use_and_commits_with_it(
    engine: Engine, audit_key: bytes
) -> None:
    # A linger longer than any test: only a use that somebody waits for can end it.
    writer = AuditWriter(engine, audit_key, linger=3600)
    writer.start()
    try:
        writer.record_sync(_event(-1))  # the head row exists; this batch is not counted below
        before = writer.stats.batches
        outcome, use = _event(0, GRANT_OUTCOME), _event(1)
        writer.submit(outcome)
        await writer.record(use)
        assert writer.stats.batches == before + 1  # one commit for both, not two
        assert [id_ for _, id_ in _stored(engine)][-2:] == [outcome.id, use.id]
    finally:
        writer.stop()
    assert verify_chain(engine, audit_key).ok


async def test_a_lingering_record_waits_for_the_next_use_and_commits_with_it(
    engine: Engine, audit_key: bytes
) -> None:
    """An SDK's outcome report: waited for (its admission may refuse it), but in the background,
    so it rides in the next use's commit like a submitted outcome."""
    writer = AuditWriter(engine, audit_key, linger=3600)
    writer.start()
    try:
        writer.record_sync(_event(-1))
        before = writer.stats.batches
        report, use = _event(0, GRANT_OUTCOME), _event(1)
        reported = asyncio.create_task(writer.record(report, linger=True))
        await asyncio.sleep(0)  # the report is queued first
        # Held, not taken: only a use somebody waits for ends the wait (read here directly:
        # whether the thread would have taken the report alone is otherwise a race to time).
        assert writer._lingering() > 0
        await writer.record(use)
        await reported
        assert writer.stats.batches == before + 1  # one commit for both, not two
        assert [id_ for _, id_ in _stored(engine)][-2:] == [report.id, use.id]
    finally:
        writer.stop()


async def test_a_lingering_record_alone_is_still_written_and_awaited(
    engine: Engine, audit_key: bytes
) -> None:
    writer = AuditWriter(engine, audit_key, linger=0.01)
    writer.start()
    try:
        report = _event(0, GRANT_OUTCOME)
        await writer.record(report, linger=True)
        assert [id_ for _, id_ in _stored(engine)] == [report.id]
        # A record that is waited for and does not linger still ends any linger at once.
        held = _event(1, GRANT_OUTCOME)
        writer.submit(held)
        await writer.record(_event(2))
        assert len(_stored(engine)) == 3
    finally:
        writer.stop()


def test_a_lingering_outcome_is_written_on_its_own_and_at_stop(
    engine: Engine, audit_key: bytes
) -> None:
    writer = AuditWriter(engine, audit_key, linger=0.01)
    writer.start()
    alone = _event(0, GRANT_OUTCOME)
    writer.submit(alone)
    wait_until(lambda: [id_ for _, id_ in _stored(engine)] == [alone.id])
    writer.stop()
    # Stopping does not wait out the linger: what is queued is written at once.
    held = AuditWriter(engine, audit_key, linger=3600)
    held.start()
    late = _event(1, GRANT_OUTCOME)
    held.submit(late)
    held.stop()
    assert [id_ for _, id_ in _stored(engine)] == [alone.id, late.id]


async def test_after_stop_record_is_refused_and_submit_is_dropped(
    engine: Engine, writer: AuditWriter
) -> None:
    writer.stop()
    with pytest.raises(Unavailable) as info:
        await writer.record(_event(1))
    assert info.value.code == "audit_unavailable"
    assert info.value.status == 503
    writer.submit(_event(2))
    assert writer.stats.dropped == 1
    assert _stored(engine) == []


async def test_record_before_start_is_a_programming_error(engine: Engine, audit_key: bytes) -> None:
    with pytest.raises(RuntimeError):
        await AuditWriter(engine, audit_key).record(_event(1))


async def test_a_missing_head_with_events_present_refuses_writes(
    engine: Engine, writer: AuditWriter
) -> None:
    await writer.record(_event(1))
    with engine.begin() as conn:
        conn.execute(sa.delete(meta).where(meta.c.key == "audit_head"))
    with pytest.raises(Unavailable):
        await writer.record(_event(2))
    assert len(_stored(engine)) == 1


async def test_a_waiter_that_times_out_gets_503(engine: Engine, audit_key: bytes) -> None:
    writer = AuditWriter(engine, audit_key, timeout=0.2)
    writer.start()
    locked, released = threading.Event(), threading.Event()

    def hold_the_head() -> None:
        with engine.begin() as blocker:
            lock_head(blocker, audit_key)
            locked.set()
            released.wait(30)

    try:
        await writer.record(_event(0))
        holder = threading.Thread(target=hold_the_head)
        holder.start()
        try:
            await asyncio.to_thread(locked.wait, 30)
            with pytest.raises(Unavailable):
                await writer.record(_event(1))
        finally:
            released.set()
            holder.join()
    finally:
        writer.stop()


def test_max_batch_must_be_positive(engine: Engine, audit_key: bytes) -> None:
    with pytest.raises(ValueError):
        AuditWriter(engine, audit_key, max_batch=0)
