"""A transaction's statements sent straight to the database driver's cursor.

The audit writer runs the same few statements for every batch (lock the chain head, check the
change count, count and store rate-limit hits, insert the rows, move the head) as driver SQL,
already written for each dialect. Through SQLAlchemy's ``Connection.exec_driver_sql`` each one
cost about 16 us of execution-context and result set-up; through the cursor, about 1 us. A vault
at concurrency 1 writes one batch per request, so that was some 100 us of every request.

`DriverSQL` wraps an open SQLAlchemy ``Connection`` (its transaction, its pool entry), runs
``exec_driver_sql`` on that connection's own cursor, and hands anything else (a Core statement on
a rare path: pruning, the first chain head) to SQLAlchemy. A driver error still arrives as
SQLAlchemy's ``DBAPIError``, without its parameters, as it would through SQLAlchemy. `SQL` is what
the code that takes either kind of connection relies on.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Dialect


class Rows(Protocol):
    """The parts of a result the batch's statements read."""

    @property
    def rowcount(self) -> int: ...

    def first(self) -> Any: ...

    def scalar_one(self) -> Any: ...

    def scalar_one_or_none(self) -> Any: ...

    def scalars(self) -> Any: ...


class SQL(Protocol):
    """A connection in a transaction: SQLAlchemy's own, or `DriverSQL` over one."""

    @property
    def dialect(self) -> Dialect: ...

    def exec_driver_sql(self, statement: str, parameters: Any = None) -> Rows: ...

    def execute(self, statement: Any) -> Any: ...


class DriverSQL:
    """``exec_driver_sql`` on the driver's cursor, everything else through ``conn``."""

    __slots__ = ("_conn", "_driver", "_error")

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._driver = conn.connection.driver_connection
        self._error: type[Exception] = conn.dialect.loaded_dbapi.Error

    @property
    def dialect(self) -> Dialect:
        return self._conn.dialect

    def exec_driver_sql(self, statement: str, parameters: Any = None) -> DriverRows:
        cursor = self._driver.cursor()  # type: ignore[union-attr]
        try:
            if isinstance(parameters, list):
                cursor.executemany(statement, parameters)
            else:
                cursor.execute(statement, parameters or ())
        except self._error as exc:
            cursor.close()
            # As SQLAlchemy raises it, and never with the bound values in its text.
            raise sa.exc.DBAPIError.instance(
                statement, None, exc, self._error, hide_parameters=True
            ) from None
        return DriverRows(cursor)

    def execute(self, statement: Any) -> Any:
        return self._conn.execute(statement)


class DriverRows:
    """A driver cursor read as SQLAlchemy's result would be, for the few reads used here."""

    __slots__ = ("_cursor",)

    def __init__(self, cursor: Any) -> None:
        self._cursor = cursor

    @property
    def rowcount(self) -> int:
        return int(self._cursor.rowcount)

    def _all(self) -> Sequence[Any]:
        try:
            return list(self._cursor.fetchall()) if self._cursor.description else []
        finally:
            self._cursor.close()

    def first(self) -> Any:
        rows = self._all()
        return rows[0] if rows else None

    def scalar_one_or_none(self) -> Any:
        rows = self._all()
        if len(rows) > 1:
            raise sa.exc.MultipleResultsFound("more than one row where at most one was expected")
        return rows[0][0] if rows else None

    def scalar_one(self) -> Any:
        rows = self._all()
        if len(rows) != 1:
            raise (sa.exc.NoResultFound if not rows else sa.exc.MultipleResultsFound)(
                f"{len(rows)} rows where exactly one was expected"
            )
        return rows[0][0]

    def scalars(self) -> _Scalars:
        return _Scalars([row[0] for row in self._all()])


class _Scalars:
    __slots__ = ("_values",)

    def __init__(self, values: list[Any]) -> None:
        self._values = values

    def all(self) -> list[Any]:
        return self._values
