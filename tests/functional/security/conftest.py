"""Fixtures of the security tests: a vault served by a real ``vaultgate serve`` process."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from functional.security.served import Served, serve_vault


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    """Two workers of a real ``serve``, trusting loopback as their reverse proxy."""
    env = {"VAULTGATE_TRUSTED_PROXIES": "127.0.0.1/32"}
    with serve_vault(tmp_path / "data", extra_env=env, workers=2) as vault:
        yield vault
