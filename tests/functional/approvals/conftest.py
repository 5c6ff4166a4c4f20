"""What the approval tests share: a vault with approvers, a grant that holds calls, the client.

Approvers are real portal users, created in the vault's own database the way ``vaultgate users
add`` does. ``ALTER_BASE_URL`` points the unmodified official client at the vault.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from support import Upstream, Vault
from support.approvals import APPROVERS, SECRET, Held
from support.database import engine_of
from support.injection import Tenant
from vaultgate.server.auth.users import create_user


@pytest.fixture
def approvers(vault: Vault) -> tuple[str, ...]:
    with engine_of(vault) as engine:
        for email in APPROVERS:
            create_user(engine, email, "a-long-password-1234", datetime.now(UTC))
    return APPROVERS


@pytest.fixture
def official(vault: Vault, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALTER_BASE_URL", vault.base_url)


@pytest.fixture
def tenant(vault: Vault) -> Tenant:
    return Tenant.create(vault)


@pytest.fixture
def hold_grant(tenant: Tenant, approvers: tuple[str, ...]) -> Callable[..., Held]:
    """Make a grant (to ``upstream``) whose policy holds calls by ``**rule``."""

    def make(upstream: Upstream | str, **rule: Any) -> Held:
        origin = upstream if isinstance(upstream, str) else upstream.origin
        grant_id = tenant.store(
            {
                "credential_type": "bearer",
                "credential": {"token": SECRET},
                "policy": {"requires_approval": rule},
            },
            [origin],
        )
        return Held(tenant, grant_id)

    return make
