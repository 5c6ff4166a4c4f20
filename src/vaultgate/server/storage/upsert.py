"""``INSERT ... ON CONFLICT`` for the connection's database (SQLite and PostgreSQL spell it alike).

The dialect's module is imported on first use, not with the services that upsert: a vault on
SQLite never loads SQLAlchemy's PostgreSQL dialect (about 2 MiB of each worker's memory), nor one
on PostgreSQL the SQLite one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import sqlalchemy as sa

if TYPE_CHECKING:
    from sqlalchemy.dialects import postgresql, sqlite

    from vaultgate.server.storage.driver import SQL


def insert(conn: SQL, table: sa.Table) -> postgresql.Insert | sqlite.Insert:
    """An insert into ``table`` that can take ``on_conflict_do_nothing`` / ``_do_update``."""
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as postgresql_insert

        return postgresql_insert(table)
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert(table)
