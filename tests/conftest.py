"""Shared fixtures: a fresh database on each backend (SQLite file, real PostgreSQL).

With CI set, a missing PostgreSQL fails the run instead of skipping (a skipped test in CI is a
broken promise).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import hypothesis
import psycopg
import pytest

# A loaded 2-core CI machine is slow at random moments: no Hypothesis example may fail for taking
# long (deadline) or for generating slowly (too_slow). Every example still runs; this profile is
# the default under the per-test @settings, which inherit what they do not set.
hypothesis.settings.register_profile(
    "vaultgate",
    deadline=None,
    suppress_health_check=[hypothesis.HealthCheck.too_slow],
)
hypothesis.settings.load_profile("vaultgate")

PG_ADMIN_URL = os.environ.get("VAULTGATE_TEST_PG", "postgresql://root@127.0.0.1:5432/postgres")
IN_CI = bool(os.environ.get("CI"))


def _pg_unavailable(reason: str) -> None:
    if IN_CI:
        pytest.fail(f"PostgreSQL is required in CI: {reason}")
    pytest.skip(f"PostgreSQL not reachable: {reason}")


def _pg_url(dbname: str) -> str:
    base = PG_ADMIN_URL.rsplit("/", 1)[0]
    return f"{base}/{dbname}"


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A brand-new PostgreSQL database, dropped afterwards."""
    name = f"vg_test_{uuid.uuid4().hex[:12]}"
    try:
        admin = psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        _pg_unavailable(str(exc).splitlines()[0])
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield _pg_url(name)
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'vaultgate.db'}"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Each test using it runs twice: on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'vaultgate.db'}"
    return str(request.getfixturevalue("pg_url"))
