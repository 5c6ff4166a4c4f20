"""Tampering with the stored trail (a real SQLite file and a real PostgreSQL database)."""

from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from vaultgate.server.audit.chain import Head, event_hash
from vaultgate.server.audit.events import ALLOWED, DENIED, GRANT_DENY, GRANT_USE, AuditEvent
from vaultgate.server.audit.queries import verify_chain
from vaultgate.server.audit.writer import AuditWriter
from vaultgate.server.storage.tables import audit_events, meta

COUNT = 10


@pytest.fixture
def trail(engine: Engine, audit_key: bytes) -> Engine:
    writer = AuditWriter(engine, audit_key)
    writer.start()
    for i in range(COUNT):
        denied = i % 3 == 0
        writer.record_sync(
            AuditEvent.new(
                event=GRANT_DENY if denied else GRANT_USE,
                outcome=DENIED if denied else ALLOWED,
                code="policy_method" if denied else None,
                reason=f"call {i}",
                details={"i": i},
            )
        )
    writer.stop()
    return engine


def _row(conn: sa.Connection, seq: int) -> dict[str, Any]:
    query = sa.select(audit_events).where(audit_events.c.seq == seq)
    return dict(conn.execute(query).one()._mapping)


def _set(conn: sa.Connection, at: int, /, **values: Any) -> None:
    conn.execute(sa.update(audit_events).where(audit_events.c.seq == at).values(**values))


def test_a_clean_trail_verifies(trail: Engine, audit_key: bytes) -> None:
    report = verify_chain(trail, audit_key)
    assert report.ok
    assert report.events == COUNT
    assert report.head_seq == COUNT


def test_an_edited_reason_is_named(trail: Engine, audit_key: bytes) -> None:
    with trail.begin() as conn:
        _set(conn, 5, reason="nothing happened")
    report = verify_chain(trail, audit_key)
    assert not report.ok
    assert report.first_bad_seq == 5
    assert report.events == 4


def test_an_edited_outcome_is_named(trail: Engine, audit_key: bytes) -> None:
    with trail.begin() as conn:
        _set(conn, 5, outcome="denied")  # event 5 was allowed
    assert verify_chain(trail, audit_key).first_bad_seq == 5


def test_a_deleted_event_is_named(trail: Engine, audit_key: bytes) -> None:
    with trail.begin() as conn:
        conn.execute(sa.delete(audit_events).where(audit_events.c.seq == 6))
    report = verify_chain(trail, audit_key)
    assert not report.ok
    assert report.first_bad_seq == 6


def test_two_swapped_events_are_named(trail: Engine, audit_key: bytes) -> None:
    with trail.begin() as conn:
        third, fourth = _row(conn, 3), _row(conn, 4)
        _set(conn, 3, id="placeholder")
        _set(conn, 4, **{k: v for k, v in third.items() if k != "seq"})
        _set(conn, 3, **{k: v for k, v in fourth.items() if k != "seq"})
    report = verify_chain(trail, audit_key)
    assert not report.ok
    assert report.first_bad_seq == 3


def test_a_reordering_by_seq_is_named(trail: Engine, audit_key: bytes) -> None:
    with trail.begin() as conn:
        _set(conn, 7, seq=1000)
        _set(conn, 8, seq=7)
        _set(conn, 1000, seq=8)
    assert verify_chain(trail, audit_key).first_bad_seq == 7


def test_a_hash_recomputed_without_the_key_is_named(trail: Engine, audit_key: bytes) -> None:
    with trail.begin() as conn:
        row = _row(conn, 2)
        row["reason"] = "forged"
        _set(conn, 2, reason="forged", hash=event_hash(row))
    report = verify_chain(trail, audit_key)
    assert report.first_bad_seq == 2
    assert report.problem is not None
    assert "audit key" in report.problem


def test_a_truncated_tail_is_detected(trail: Engine, audit_key: bytes) -> None:
    with trail.begin() as conn:
        conn.execute(sa.delete(audit_events).where(audit_events.c.seq > 7))
    report = verify_chain(trail, audit_key)
    assert not report.ok
    assert report.events == 7
    assert report.first_bad_seq == 8


def test_a_truncated_tail_with_a_rewritten_head_is_detected(
    trail: Engine, audit_key: bytes
) -> None:
    with trail.begin() as conn:
        seventh = _row(conn, 7)
        conn.execute(sa.delete(audit_events).where(audit_events.c.seq > 7))
        forged = Head(7, seventh["hash"], "f" * 64).dump()
        conn.execute(sa.update(meta).where(meta.c.key == "audit_head").values(value=forged))
    report = verify_chain(trail, audit_key)
    assert not report.ok
    assert report.first_bad_seq == 8


def test_a_deleted_head_is_detected(trail: Engine, audit_key: bytes) -> None:
    with trail.begin() as conn:
        conn.execute(sa.delete(meta).where(meta.c.key == "audit_head"))
    assert not verify_chain(trail, audit_key).ok


def test_a_garbled_head_is_detected(trail: Engine, audit_key: bytes) -> None:
    with trail.begin() as conn:
        conn.execute(sa.update(meta).where(meta.c.key == "audit_head").values(value="{oops"))
    report = verify_chain(trail, audit_key)
    assert not report.ok
    assert report.events == COUNT


def test_another_key_does_not_verify(trail: Engine) -> None:
    assert verify_chain(trail, b"some other key").first_bad_seq == 1


def test_an_empty_trail_verifies(engine: Engine, audit_key: bytes) -> None:
    report = verify_chain(engine, audit_key)
    assert report.ok
    assert report.events == 0
