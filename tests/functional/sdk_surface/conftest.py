"""One vault per module and database (SQLite, PostgreSQL); each test makes its own app.

Every test here runs twice, once per database, through the unmodified official client
(``alter_sdk``) pointed at the vault by ``ALTER_BASE_URL``.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest

from support import Upstream, Vault, run_upstream, run_vault
from support.injection import Tenant

PG_ADMIN_URL = os.environ.get("VAULTGATE_TEST_PG", "postgresql://root@127.0.0.1:5432/postgres")


@contextmanager
def _pg_database() -> Iterator[str]:
    name = f"vg_surface_{uuid.uuid4().hex[:12]}"
    try:
        admin = psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        reason = str(exc).splitlines()[0]
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL is required in CI: {reason}")
        pytest.skip(f"PostgreSQL not reachable: {reason}")
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{PG_ADMIN_URL.rsplit('/', 1)[0]}/{name}"
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def surface_vault(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Vault]:
    data: Path = tmp_path_factory.mktemp("vault") / "data"
    if request.param == "sqlite":
        with run_vault(data) as server:
            yield server
        return
    with _pg_database() as url, run_vault(data, url) as server:
        yield server


@pytest.fixture(scope="module")
def shared_upstream() -> Iterator[Upstream]:
    with run_upstream() as server:
        yield server


@pytest.fixture
def origin(shared_upstream: Upstream) -> Upstream:
    shared_upstream.requests.clear()
    return shared_upstream


@pytest.fixture
def tenant(surface_vault: Vault, monkeypatch: pytest.MonkeyPatch) -> Tenant:
    """A fresh app with one key; the official client pointed at the vault."""
    monkeypatch.setenv("ALTER_BASE_URL", surface_vault.base_url)
    return Tenant.create(surface_vault, f"app-{uuid.uuid4().hex[:8]}")
