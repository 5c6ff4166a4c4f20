"""Real fleets: ``serve`` processes with several workers, several nodes on one PostgreSQL database.

Starting a node costs seconds, so a module shares its fleet (module-scoped fixtures); each test
makes its own app, key and secrets on it.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import psycopg
import pytest

from support import Upstream, run_upstream

PG_ADMIN_URL = os.environ.get("VAULTGATE_TEST_PG", "postgresql://root@127.0.0.1:5432/postgres")


@pytest.fixture(scope="module")
def fleet_pg_url() -> Iterator[str]:
    """A PostgreSQL database of the module's own, dropped afterwards."""
    name = f"vg_fleet_{uuid.uuid4().hex[:12]}"
    try:
        admin = psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL is required in CI: {exc}")
        pytest.skip(f"PostgreSQL not reachable: {exc}")
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{PG_ADMIN_URL.rsplit('/', 1)[0]}/{name}"
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="module")
def fleet_upstream() -> Iterator[Upstream]:
    with run_upstream() as server:
        yield server
