"""One vault and one upstream per module; each test stores its own grants in a fresh app."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from support import Upstream, Vault, run_upstream, run_vault
from support.injection import Tenant


@pytest.fixture(scope="module")
def shared_vault(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Vault]:
    with run_vault(tmp_path_factory.mktemp("vault") / "data") as server:
        yield server


@pytest.fixture(scope="module")
def shared_upstream() -> Iterator[Upstream]:
    with run_upstream() as server:
        yield server


@pytest.fixture
def origin(shared_upstream: Upstream) -> Upstream:
    """The module's upstream with nothing recorded yet."""
    shared_upstream.requests.clear()
    shared_upstream.gate.clear()
    return shared_upstream


@pytest.fixture
def tenant(shared_vault: Vault, monkeypatch: pytest.MonkeyPatch) -> Tenant:
    """A fresh app (its own rate-limit buckets and audit rows); the official client pointed at
    the vault."""
    monkeypatch.setenv("ALTER_BASE_URL", shared_vault.base_url)
    return Tenant.create(shared_vault, f"app-{uuid.uuid4().hex[:8]}")
