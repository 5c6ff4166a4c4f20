"""Engine creation and migrations for SQLite (WAL) and PostgreSQL (psycopg 3).

Durability: a commit is on disk before it returns, by default. On SQLite that is
``synchronous=FULL`` (WAL mode: the WAL is fsync'd at every commit; the audit writer's group commit
makes that one fsync per batch, not per request); on PostgreSQL ``synchronous_commit=on``.
``durability="normal"`` (``VAULTGATE_DURABILITY=normal``) trades that for speed: the database stays
consistent, but the last commits before an OS crash or power loss may be lost, audit records of
released credentials included.

The SQLite file and its WAL/SHM siblings are private to the vault's user (0600, in a 0700 directory
when the engine creates it): they hold the admin's password hash and the whole audit trail.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import sqlalchemy as sa
from sqlalchemy.engine import Engine

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).parent / "migrations"


def normalize_url(url: str) -> str:
    """Accept the usual spellings of a PostgreSQL URL and pick the psycopg 3 driver."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


DURABILITY_LEVELS: Final = ("full", "normal")
_SQLITE_SYNCHRONOUS: Final = {"full": "FULL", "normal": "NORMAL"}
_PG_SYNCHRONOUS_COMMIT: Final = {"full": "on", "normal": "off"}
# SQLite makes the WAL and SHM files with the main file's mode, so these cover all three.
SQLITE_SUFFIXES: Final = ("", "-wal", "-shm", "-journal", ".audit-lock")
PRIVATE_FILE: Final = 0o600
PRIVATE_DIR: Final = 0o700


# Each connection's page cache, in KiB (SQLite's default is 2,000). A worker holds several
# connections (the pool, the audit writer, the checkpointer), and as the audit trail grows each
# fills its cache with audit pages: about 2 MiB resident per connection, which is what a worker
# gained over 200,000 proxied requests. The file's pages stay in the OS cache, so a page missed
# here costs a read from memory; the writer's appends touch only the right edge of each tree.
SQLITE_CACHE_KIB: Final = 512


def _sqlite_pragmas(synchronous: str) -> Callable[[sqlite3.Connection, Any], None]:
    def on_connect(dbapi_conn: sqlite3.Connection, _record: Any) -> None:
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute(f"PRAGMA synchronous={synchronous}")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=10000")
        cur.execute(f"PRAGMA cache_size=-{SQLITE_CACHE_KIB}")
        cur.close()

    return on_connect


def _sqlite_begin(conn: sa.Connection) -> None:
    # BEGIN IMMEDIATE: a transaction that may write takes the write lock at its start, so two
    # writers never deadlock on a lock upgrade (SQLite's default deferred BEGIN can). Reads
    # opened with `reading()` stay deferred: in WAL mode they never wait for a writer, and
    # taking the write lock for them would queue every read behind the audit trail's commits.
    read_only = conn.get_execution_options().get(READ_ONLY, False)
    statement = "BEGIN" if read_only else "BEGIN IMMEDIATE"
    # On the driver's cursor: every transaction begins here, and SQLAlchemy's execution context
    # for one statement cost more than the statement (storage/driver.py). A failure (the lock
    # not taken within busy_timeout) still raises SQLAlchemy's error, which callers map to 503.
    try:
        conn.connection.driver_connection.execute(statement)  # type: ignore[union-attr]
    except sqlite3.Error as exc:
        raise sa.exc.DBAPIError.instance(statement, None, exc, sqlite3.Error) from None


READ_ONLY = "vaultgate_read_only"


@contextmanager
def reading(engine: Engine) -> Iterator[sa.Connection]:
    """A connection for reads only (on SQLite it does not take the write lock)."""
    with engine.connect() as conn:
        conn.execution_options(**{READ_ONLY: True})
        yield conn


def sqlite_write_turn(engine: Engine) -> contextlib.AbstractContextManager[object]:
    """On a SQLite file, an exclusive ``flock`` beside it for the length of a write transaction.

    Several worker processes (``serve --workers N``) share one SQLite file. Contending on
    SQLite's own lock makes a writer sleep in its busy handler for a millisecond or more per
    retry; a blocking ``flock`` hands the turn over as soon as the other commit ends. Every
    frequent writer takes it (the audit writer's batches, the key rate's updates); elsewhere, and
    on PostgreSQL, it is a no-op.
    """
    database = engine.url.database if engine.dialect.name == "sqlite" else None
    if not database or database == ":memory:":
        return contextlib.nullcontext()
    return _FileLock(f"{database}.audit-lock")


class _FileLock:
    """An exclusive ``flock`` on a file, for the length of a ``with`` block."""

    def __init__(self, path: str) -> None:
        self._path = path
        self._fd = -1

    def __enter__(self) -> _FileLock:
        self._fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc_info: object) -> None:
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)


def _check_durability(durability: str) -> None:
    if durability not in DURABILITY_LEVELS:
        raise ValueError(f"durability must be one of {', '.join(DURABILITY_LEVELS)}")


def private_sqlite_file(path: Path) -> None:
    """Create the database file 0600 (in a new 0700 directory) before SQLite opens it.

    Creating it ourselves with an explicit mode, rather than under a changed umask, keeps the
    process-wide umask alone (other threads may be creating files meanwhile). An existing file
    and its siblings are narrowed to 0600 too: a vault made by an older version had 0644.
    """
    path.parent.mkdir(parents=True, exist_ok=True, mode=PRIVATE_DIR)
    os.close(os.open(path, os.O_RDWR | os.O_CREAT, PRIVATE_FILE))
    for suffix in SQLITE_SUFFIXES:
        sibling = path.with_name(path.name + suffix)
        if sibling.exists() and sibling.stat().st_mode & 0o777 != PRIVATE_FILE:
            sibling.chmod(PRIVATE_FILE)


def create_engine(url: str, *, durability: str = "full", **kwargs: Any) -> Engine:
    _check_durability(durability)
    url = normalize_url(url)
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            private_sqlite_file(Path(path))
        engine = sa.create_engine(
            url, connect_args={"check_same_thread": False, "isolation_level": None}, **kwargs
        )
        sa.event.listen(engine, "connect", _sqlite_pragmas(_SQLITE_SYNCHRONOUS[durability]))
        sa.event.listen(engine, "begin", _sqlite_begin)
        return engine
    from vaultgate.server.storage.tables import declare_postgresql

    declare_postgresql()
    kwargs.setdefault("pool_size", 10)
    kwargs.setdefault("max_overflow", 20)
    kwargs.setdefault("pool_pre_ping", True)
    # Per connection, so a server configured with synchronous_commit=off does not silently
    # weaken the promise that a released credential's use record is on disk.
    options = f"-c synchronous_commit={_PG_SYNCHRONOUS_COMMIT[durability]}"
    kwargs.setdefault("connect_args", {}).setdefault("options", options)
    return sa.create_engine(url, **kwargs)


# Alembic is imported by the functions that use it, not by this module: a worker process serves
# a schema its supervisor (or ``init``) migrated, and alembic with mako and pygments would cost
# it 3 MiB of memory for nothing (tests/functional/fleet/test_worker_imports.py).
def _alembic_config() -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest revision (a no-op when it is there already)."""
    from alembic import command

    cfg = _alembic_config()
    with engine.connect() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")
        conn.commit()


def schema_is_current(engine: Engine) -> bool:
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(_alembic_config()).get_current_head()
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision() == head


def has_schema(engine: Engine) -> bool:
    return sa.inspect(engine).has_table("meta")
