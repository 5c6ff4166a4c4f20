"""A migrated engine on each backend (SQLite, then PostgreSQL), for the tests that store things."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy.engine import Engine

from vaultgate.server.storage.engine import create_engine, migrate


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    eng = create_engine(db_url)
    migrate(eng)
    yield eng
    eng.dispose()
