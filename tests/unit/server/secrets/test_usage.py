"""UsageRecorder: at most one last_used_at write per grant per interval, batched, never raising."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from vaultgate.server.secrets.usage import UsageRecorder
from vaultgate.server.storage import tables as t
from vaultgate.server.storage.engine import create_engine, migrate

T0 = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def engine(sqlite_url: str) -> Iterator[Engine]:
    engine = create_engine(sqlite_url)
    migrate(engine)
    yield engine
    engine.dispose()


def _rows(engine: Engine) -> tuple[str, str, str]:
    """An app, a key, a secret and a grant; returns (grant, secret, key) ids."""
    app, key, secret, grant = (str(uuid.uuid4()) for _ in range(4))
    with engine.begin() as conn:
        conn.execute(t.apps.insert().values(id=app, name=app, created_at=T0))
        conn.execute(
            t.api_keys.insert().values(
                id=key, app_id=app, kind="app", name="k", key_hash=key, hint="h", created_at=T0
            )
        )
        conn.execute(
            t.secrets.insert().values(
                id=secret,
                app_id=app,
                name="s",
                credential_type="bearer",
                injection={},
                allowed_hosts=[],
                version=1,
                created_at=T0,
                updated_at=T0,
            )
        )
        conn.execute(
            t.grants.insert().values(
                id=grant,
                secret_id=secret,
                app_id=app,
                policy={},
                status="active",
                depth=0,
                created_at=T0,
            )
        )
    return grant, secret, key


def _used(engine: Engine, table: sa.Table, row_id: str) -> datetime | None:
    with engine.connect() as conn:
        query = sa.select(table.c.last_used_at).where(table.c.id == row_id)
        value: datetime | None = conn.execute(query).scalar_one()
    return value


def test_a_use_marks_grant_secret_and_key(engine: Engine) -> None:
    grant, secret, key = _rows(engine)
    usage = UsageRecorder(engine, clock=Clock())
    assert usage.touch(grant, secret, key, T0)
    assert _used(engine, t.grants, grant) is None  # nothing written until the flush
    assert usage.flush() == 1
    for table, row in ((t.grants, grant), (t.secrets, secret), (t.api_keys, key)):
        assert _used(engine, table, row) == T0


def test_uses_within_the_interval_cost_no_write(engine: Engine) -> None:
    grant, secret, key = _rows(engine)
    clock = Clock()
    usage = UsageRecorder(engine, interval=60, clock=clock)
    assert usage.touch(grant, secret, key, T0)
    clock.now = 59.9
    assert not usage.touch(grant, secret, key, T0 + timedelta(seconds=59))
    assert usage.flush() == 1
    assert usage.flush() == 0
    assert _used(engine, t.grants, grant) == T0
    clock.now = 60.0
    assert usage.touch(grant, secret, key, T0 + timedelta(seconds=60))
    usage.flush()
    assert _used(engine, t.grants, grant) == T0 + timedelta(seconds=60)


def test_a_late_batch_never_moves_the_time_back(engine: Engine) -> None:
    grant, secret, key = _rows(engine)
    newer, older = UsageRecorder(engine, clock=Clock()), UsageRecorder(engine, clock=Clock())
    newer.touch(grant, secret, key, T0 + timedelta(minutes=5))
    older.touch(grant, secret, key, T0)
    newer.flush()
    older.flush()
    assert _used(engine, t.secrets, secret) == T0 + timedelta(minutes=5)


def test_a_failing_store_is_swallowed_and_logged(
    engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    grant, secret, key = _rows(engine)
    usage = UsageRecorder(engine, clock=Clock())
    usage.touch(grant, secret, key, T0)
    with engine.begin() as conn:
        conn.exec_driver_sql("DROP TABLE grants")
    assert usage.flush() == 0
    assert "last_used_at not updated" in caplog.text
