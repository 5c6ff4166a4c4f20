"""A vault (SQLite and PostgreSQL), Authlib's authorization server on loopback and a recording
upstream for the provider's API; helpers in support/connect_flow.py."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from support import Upstream, Vault, run_upstream
from support.connect_flow import Connectable, connectable_app
from support.oauth_authcode_server import AuthServer, run_authcode_server


@pytest.fixture
def auth() -> Iterator[AuthServer]:
    with run_authcode_server() as server:
        yield server


@pytest.fixture
def api() -> Iterator[Upstream]:
    with run_upstream() as server:
        yield server


@pytest.fixture
def connectable(
    vault: Vault, auth: AuthServer, api: Upstream, monkeypatch: pytest.MonkeyPatch
) -> Connectable:
    monkeypatch.setenv("ALTER_BASE_URL", vault.base_url)
    return connectable_app(vault, auth, api)
