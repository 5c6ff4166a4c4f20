"""Direct access to a running vault's database, for checks the API cannot make (what is stored)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from support.servers import Vault
from vaultgate.server.settings import load_settings


def database_url(vault: Vault) -> str:
    return load_settings(vault.env).db_url


def sqlite_path(vault: Vault) -> Path:
    url = database_url(vault)
    assert url.startswith("sqlite:///"), url
    return Path(url.removeprefix("sqlite:///"))


@contextmanager
def engine_of(vault: Vault) -> Iterator[Engine]:
    """A separate engine on the vault's database (not the vault's own pool)."""
    engine = sa.create_engine(database_url(vault))
    try:
        yield engine
    finally:
        engine.dispose()


def sqlite_bytes(vault: Vault) -> bytes:
    """Every byte SQLite keeps for the vault: the database file, its WAL and shared memory."""
    path = sqlite_path(vault)
    files = [path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")]
    return b"".join(f.read_bytes() for f in files if f.exists())
