import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from vaultgate.server.storage.engine import create_engine, migrate, schema_is_current
from vaultgate.server.storage.tables import metadata


def test_migrations_build_the_declared_schema_from_empty(db_url: str) -> None:
    engine = create_engine(db_url)
    assert not sa.inspect(engine).get_table_names()
    migrate(engine)
    assert schema_is_current(engine)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    assert diff == []
    engine.dispose()


def test_migrate_twice_is_a_no_op(db_url: str) -> None:
    engine = create_engine(db_url)
    migrate(engine)
    migrate(engine)
    assert schema_is_current(engine)
    engine.dispose()


def test_sqlite_runs_in_wal_mode(sqlite_url: str) -> None:
    engine = create_engine(sqlite_url)
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    engine.dispose()
