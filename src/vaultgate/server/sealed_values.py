"""Every value the barrier seals into the database: where it is, which master key wraps its data
key, and how to move that key to the active master key without touching the payload.

``master-key rewrap`` and ``rotate`` walk :data:`COLUMNS`, so a new sealed column belongs there
(a test fails for a binary column that is not). Each blob's layout stays in the module that
seals it; this one knows only the rows and the context each value is bound to.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final, NamedTuple

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from vaultgate.server.approvals import sealing as approval_sealing
from vaultgate.server.crypto import (
    Barrier,
    DecryptionError,
    MasterKeyError,
    Sealed,
    aad_for,
    wrapping_key_id,
)
from vaultgate.server.oauth import sealing as oauth_sealing
from vaultgate.server.oauth.store import rewrap_state
from vaultgate.server.sinks.store import rewrap_secret, secret_key_id
from vaultgate.server.storage import tables as t
from vaultgate.server.storage.engine import reading

# Listing reads this much of each value: a blob's length field and its whole wrapped data key
# (at most 133 bytes), never the payload, which for a held request is a whole body.
HEAD: Final = 256

Row = Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class SealedColumn:
    """One column of sealed values.

    ``key_id`` reads which master key wraps a value from its head; ``rewrap`` gives the column
    values that move a locked row's value to the active key. With ``secret_app``, the row's
    context includes the app of its secret (``secrets.app_id``), which never changes.
    """

    table: sa.Table
    column: str
    key: tuple[str, ...]
    key_id: Callable[[bytes], str | None]
    rewrap: Callable[[Barrier, Row], dict[str, Any]]
    secret_app: bool = False

    @property
    def name(self) -> str:
        return f"{self.table.name}.{self.column}"


class Found(NamedTuple):
    """A sealed value as listed: its column, the row's key and fixed context, its master key."""

    column: SealedColumn
    ref: dict[str, Any]
    key_id: str | None


def _wrapped_key_id(head: bytes) -> str | None:
    return wrapping_key_id(Sealed(ciphertext=b"", wrapped_key=head, master_key_id=""))


def _wrapped(new: tuple[bytes, str]) -> dict[str, Any]:
    return {"wrapped_key": new[0], "master_key_id": new[1]}


def _secret_version(barrier: Barrier, row: Row) -> dict[str, Any]:
    aad = aad_for(row["app_id"], row["secret_id"], row["version"])
    return _wrapped(barrier.rewrap(row["wrapped_key"], aad=aad))


def _token_state(barrier: Barrier, row: Row) -> dict[str, Any]:
    ids = {"app_id": row["app_id"], "secret_id": row["secret_id"], "version": row["version"]}
    return _wrapped(rewrap_state(barrier, row["wrapped_key"], **ids))


def _oauth(column: str, table: str) -> Callable[[Barrier, Row], dict[str, Any]]:
    def rewrap(barrier: Barrier, row: Row) -> dict[str, Any]:
        return {column: oauth_sealing.rewrap(barrier, row[column], table, row["id"], column)}

    return rewrap


def _approval(kind: approval_sealing.Kind) -> Callable[[Barrier, Row], dict[str, Any]]:
    column = f"{kind}_sealed"

    def rewrap(barrier: Barrier, row: Row) -> dict[str, Any]:
        ids = {"app_id": row["app_id"], "approval_id": row["id"], "kind": kind}
        return {column: approval_sealing.rewrap(barrier, row[column], **ids)}

    return rewrap


def _sink_secret(barrier: Barrier, row: Row) -> dict[str, Any]:
    return {"secret_sealed": rewrap_secret(barrier, row["id"], row["secret_sealed"])}


COLUMNS: Final = (
    SealedColumn(
        t.secret_versions,
        "wrapped_key",
        ("secret_id", "version"),
        _wrapped_key_id,
        _secret_version,
        secret_app=True,
    ),
    SealedColumn(
        t.oauth_tokens,
        "wrapped_key",
        ("secret_id",),
        _wrapped_key_id,
        _token_state,
        secret_app=True,
    ),
    SealedColumn(
        t.oauth_apps,
        "client_secret",
        ("id",),
        oauth_sealing.key_id_of,
        _oauth("client_secret", "oauth_apps"),
    ),
    SealedColumn(
        t.connect_sessions,
        "verifier",
        ("id",),
        oauth_sealing.key_id_of,
        _oauth("verifier", "connect_sessions"),
    ),
    SealedColumn(
        t.approval_requests,
        "request_sealed",
        ("id",),
        approval_sealing.key_id_of,
        _approval("request"),
    ),
    SealedColumn(
        t.approval_requests,
        "result_sealed",
        ("id",),
        approval_sealing.key_id_of,
        _approval("result"),
    ),
    SealedColumn(t.audit_sinks, "secret_sealed", ("id",), secret_key_id, _sink_secret),
)


def found(engine: Engine) -> list[Found]:
    """Every sealed value in the database, with the master key its data key is wrapped under."""
    out: list[Found] = []
    with reading(engine) as conn:
        for column in COLUMNS:
            for row in conn.execute(_listing(column)).mappings():
                ref = dict(row)
                head = bytes(ref.pop("head"))
                out.append(Found(column, ref, column.key_id(head)))
    return out


def not_under(engine: Engine, key_id: str) -> list[Found]:
    """The sealed values whose data key is not wrapped under ``key_id``."""
    return [value for value in found(engine) if value.key_id != key_id]


class Unreadable(Exception):
    """A sealed value that does not open under the key set (corrupt, truncated, or wrapped
    under a key it lacks): `move` leaves it as it is."""


def describe(value: Found) -> str:
    """Which value: its column and its row's key, for an operator (never any sealed bytes)."""
    where = ", ".join(f"{name}={value.ref[name]}" for name in value.column.key)
    return f"{value.column.name} ({where})"


def move(engine: Engine, barrier: Barrier, value: Found) -> bool:
    """Re-wrap one value under the active key in its own transaction; whether it moved.

    The row is locked and read again: one that vanished meanwhile, or whose value was sealed
    anew under the active key, is left alone. Otherwise its current value moves (the context is
    read from the locked row, so a token state rewritten for a new version moves under that).
    """
    column = value.column
    table = column.table
    where = [table.c[name] == value.ref[name] for name in column.key]
    with engine.begin() as conn:
        row = conn.execute(sa.select(table).where(*where).with_for_update()).mappings().first()
        current = None if row is None else row[column.column]
        if row is None or current is None or column.key_id(current) == barrier.active_key_id:
            return False
        try:
            moved = column.rewrap(barrier, {**value.ref, **row})
        except (DecryptionError, MasterKeyError, ValueError, struct.error) as exc:
            raise Unreadable(describe(value)) from exc
        conn.execute(table.update().where(*where).values(**moved))
    return True


def _listing(column: SealedColumn) -> sa.Select[Any]:
    table = column.table
    value = table.c[column.column]
    head = sa.func.substr(value, 1, HEAD, type_=sa.LargeBinary).label("head")
    query = sa.select(*(table.c[name] for name in column.key), head).where(value.isnot(None))
    if column.secret_app:
        query = query.join(t.secrets, t.secrets.c.id == table.c.secret_id).add_columns(
            t.secrets.c.app_id
        )
    return query
