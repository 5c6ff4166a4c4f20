"""One vault and one upstream per module (starting a vault per test would dominate the run).

Tests that need a pristine vault (audit contents, a vault without the loopback allowance) start
their own with the function-scoped fixtures of ``tests/functional/conftest.py``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from support import Upstream, Vault, run_upstream, run_vault
from support.injection import SHAPES, Tenant


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
    shared_upstream.gate_timed_out = False
    return shared_upstream


@pytest.fixture(scope="module")
def tenant(shared_vault: Vault) -> Tenant:
    return Tenant.create(shared_vault)


@pytest.fixture(scope="module")
def grants(tenant: Tenant, shared_upstream: Upstream) -> dict[str, str]:
    """A grant per rule shape, every one bound to the upstream only."""
    return {shape.id: tenant.store(shape.body, [shared_upstream.origin]) for shape in SHAPES}
