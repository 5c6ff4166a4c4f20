from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from support import Upstream, Vault, run_upstream, run_vault


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    with run_upstream() as server:
        yield server


@pytest.fixture
def evil() -> Iterator[Upstream]:
    """A capture server standing in for an attacker: it must receive nothing."""
    with run_upstream() as server:
        yield server


@pytest.fixture
def vault(tmp_path: Path, db_url: str) -> Iterator[Vault]:
    """A real vault on loopback, on SQLite and on PostgreSQL."""
    url = None if db_url.startswith("sqlite") else db_url
    with run_vault(tmp_path / "data", url) as server:
        yield server


@pytest.fixture
def sqlite_vault(tmp_path: Path) -> Iterator[Vault]:
    with run_vault(tmp_path / "data") as server:
        yield server
