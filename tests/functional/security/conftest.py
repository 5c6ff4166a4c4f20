"""Fixtures of the security tests: a vault served by a real ``vaultgate serve`` process."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from functional.security.served import Served, serve_vault


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    """A vault served by a real process, trusting loopback as its reverse proxy."""
    with serve_vault(
        tmp_path / "data", extra_env={"VAULTGATE_TRUSTED_PROXIES": "127.0.0.1/32"}
    ) as v:
        yield v
