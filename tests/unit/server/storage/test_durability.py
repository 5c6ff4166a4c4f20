"""Durable means on disk: a commit is fsync'd before it returns unless the operator opts out."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from vaultgate.server.settings import SettingsError, load_settings
from vaultgate.server.storage.engine import create_engine

SQLITE_FULL, SQLITE_NORMAL = 2, 1


def _sqlite_synchronous(url: str, **kwargs: str) -> int:
    engine = create_engine(url, **kwargs)
    try:
        with engine.connect() as conn:
            return int(conn.exec_driver_sql("PRAGMA synchronous").scalar_one())
    finally:
        engine.dispose()


def _pg_synchronous_commit(url: str, **kwargs: str) -> str:
    engine = create_engine(url, **kwargs)
    try:
        with engine.connect() as conn:
            return str(conn.execute(sa.text("SHOW synchronous_commit")).scalar_one())
    finally:
        engine.dispose()


def test_sqlite_commits_are_full_by_default(sqlite_url: str) -> None:
    assert _sqlite_synchronous(sqlite_url) == SQLITE_FULL


def test_sqlite_normal_only_when_asked_for(sqlite_url: str) -> None:
    assert _sqlite_synchronous(sqlite_url, durability="normal") == SQLITE_NORMAL


@pytest.mark.postgres
def test_postgres_commits_wait_for_the_wal_flush_by_default(pg_url: str) -> None:
    assert _pg_synchronous_commit(pg_url) == "on"


@pytest.mark.postgres
def test_postgres_normal_only_when_asked_for(pg_url: str) -> None:
    assert _pg_synchronous_commit(pg_url, durability="normal") == "off"


def test_a_durability_level_that_does_not_exist_is_refused(sqlite_url: str) -> None:
    with pytest.raises(ValueError, match="durability"):
        create_engine(sqlite_url, durability="sometimes")


def test_the_setting_is_read_from_the_environment() -> None:
    assert load_settings({}).durability == "full"
    assert load_settings({"VAULTGATE_DURABILITY": "normal"}).durability == "normal"
    with pytest.raises(SettingsError, match="VAULTGATE_DURABILITY"):
        load_settings({"VAULTGATE_DURABILITY": "fast"})
