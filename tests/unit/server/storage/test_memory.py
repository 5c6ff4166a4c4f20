"""What a connection costs a worker: a bounded page cache, and only its own dialect loaded."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from vaultgate.server.storage import tables
from vaultgate.server.storage.engine import SQLITE_CACHE_KIB, create_engine


def test_each_sqlite_connection_caches_at_most_the_bounded_pages(sqlite_url: str) -> None:
    engine = create_engine(sqlite_url)
    try:
        for _ in range(2):  # a fresh connection and one from the pool alike
            with engine.connect() as conn:
                size = conn.exec_driver_sql("PRAGMA cache_size").scalar_one()
                assert size == -SQLITE_CACHE_KIB  # negative: KiB, not pages
    finally:
        engine.dispose()
    # The twin: SQLite's own default, which the pragma replaces, is larger.
    import sqlite3

    with sqlite3.connect(":memory:") as plain:
        assert plain.execute("PRAGMA cache_size").fetchone()[0] < -SQLITE_CACHE_KIB


def _dialects_loaded(url: str) -> list[str]:
    code = textwrap.dedent(
        f"""
        import sys
        from vaultgate.server.storage.engine import create_engine
        from vaultgate.server.storage import upsert, tables
        engine = create_engine({url!r})
        with engine.begin() as conn:
            tables.metadata.create_all(conn, tables=[tables.leases])
            upsert.insert(conn, tables.leases).values(name="n", owner="o", until=1.0)
        print(sorted(m for m in sys.modules if m.startswith("sqlalchemy.dialects.")))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    return [name.strip("' ") for name in done.stdout.strip("[]\n").split(",")]


def test_a_vault_on_sqlite_never_loads_the_postgresql_dialect(sqlite_url: str) -> None:
    loaded = _dialects_loaded(sqlite_url)
    assert "sqlalchemy.dialects.sqlite" in loaded
    assert not [name for name in loaded if name.startswith("sqlalchemy.dialects.postgresql")]


@pytest.mark.postgres
def test_a_vault_on_postgresql_loads_its_dialect_and_partial_index(pg_url: str) -> None:
    assert "sqlalchemy.dialects.postgresql" in _dialects_loaded(pg_url)
    create_engine(pg_url).dispose()  # declares the PostgreSQL-only options
    index = next(i for i in tables.secrets.indexes if i.name == "uq_secrets_live_name")
    assert str(index.dialect_options["postgresql"]["where"]) == "deleted_at IS NULL"
