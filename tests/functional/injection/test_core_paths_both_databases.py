"""The core path on SQLite and PostgreSQL: a stored secret, its rules and policy read back from
the database, used through each runtime mode. The rest of this folder runs on SQLite only."""

from __future__ import annotations

import alter_sdk
import httpx
import pytest

from support import Upstream, Vault
from support.injection import SHAPES, Shape, Tenant, assert_injected
from vaultgate import AlterVault

PICKED = [s for s in SHAPES if s.id in ("header-and-query", "basic")]


@pytest.mark.parametrize("shape", PICKED, ids=[s.id for s in PICKED])
async def test_every_mode_injects_from_a_stored_secret(
    shape: Shape, vault: Vault, upstream: Upstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    tenant = Tenant.create(vault)
    grant = tenant.store(shape.body, [upstream.origin])
    url = f"{upstream.origin}/v1/echo"
    async with AlterVault(api_key=tenant.key, base_url=vault.base_url) as ours:
        await ours.request("GET", url, grant_id=grant)
        await ours.proxy_request("GET", url, grant_id=grant)
    monkeypatch.setenv("ALTER_BASE_URL", vault.base_url)
    async with alter_sdk.App(api_key=tenant.key) as official:
        await official.request("GET", url, grant_id=grant)
        await official.proxy_request("GET", url, grant_id=grant)
    response = httpx.get(
        f"{vault.base_url}/proxy/{grant}/v1/echo",
        headers={"Authorization": f"Bearer {tenant.key}"},
        trust_env=False,
    )
    assert response.status_code == 200
    assert len(upstream.requests) == 5
    for received in upstream.requests:
        assert_injected(received, shape, app_key=tenant.key)


async def test_a_stored_proxy_only_policy_holds(
    vault: Vault, upstream: Upstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    tenant = Tenant.create(vault)
    grant = tenant.store(
        {
            "credential_type": "bearer",
            "credential": {"token": "canary-both-dbs-Ty6"},
            "policy": {"proxy_only": True},
        },
        [upstream.origin],
    )
    monkeypatch.setenv("ALTER_BASE_URL", vault.base_url)
    async with alter_sdk.App(api_key=tenant.key) as official:
        with pytest.raises(alter_sdk.RestrictedGrantRequiresProxyError):
            await official.request("GET", f"{upstream.origin}/x", grant_id=grant)
        result = await official.proxy_request("GET", f"{upstream.origin}/x", grant_id=grant)
    assert result.status_code == 200
    assert [r.headers["authorization"] for r in upstream.requests] == ["Bearer canary-both-dbs-Ty6"]
