"""Every credential type and rule shape, through our SDK: retrieve and proxy, async and sync."""

from __future__ import annotations

import json

import pytest

from support import Upstream, Vault
from support.injection import SHAPES, Shape, Tenant, assert_injected, shape_ids
from vaultgate import AlterVault, HttpMethod, SyncVault

BODY = {"prompt": "hello", "n": 1}
QUERY = {"x": "1"}


def _check(origin: Upstream, shape: Shape, tenant: Tenant, status: int) -> None:
    assert status == 200
    got = origin.last()
    assert len(origin.requests) == 1
    assert got.method == "POST"
    assert got.path.startswith("/v1/echo?")
    assert json.loads(got.body) == BODY
    assert_injected(got, shape, app_key=tenant.key, caller_query=QUERY)


@pytest.mark.parametrize("shape", SHAPES, ids=shape_ids())
async def test_async_retrieve_mode_injects_in_the_sdk(
    shape: Shape, shared_vault: Vault, tenant: Tenant, grants: dict[str, str], origin: Upstream
) -> None:
    async with AlterVault(api_key=tenant.key, base_url=shared_vault.base_url) as vault:
        response = await vault.request(
            HttpMethod.POST,
            f"{origin.origin}/v1/echo",
            grant_id=grants[shape.id],
            json=BODY,
            params=QUERY,
            reason="shape test",
        )
    _check(origin, shape, tenant, response.status_code)


@pytest.mark.parametrize("shape", SHAPES, ids=shape_ids())
async def test_async_proxy_mode_injects_in_the_vault(
    shape: Shape, shared_vault: Vault, tenant: Tenant, grants: dict[str, str], origin: Upstream
) -> None:
    async with AlterVault(api_key=tenant.key, base_url=shared_vault.base_url) as vault:
        response = await vault.proxy_request(
            HttpMethod.POST,
            f"{origin.origin}/v1/echo",
            grant_id=grants[shape.id],
            json=BODY,
            params=QUERY,
        )
    _check(origin, shape, tenant, response.status_code)
    assert response.json()["path"] == origin.last().path


@pytest.mark.parametrize("shape", SHAPES, ids=shape_ids())
def test_sync_retrieve_mode(
    shape: Shape, shared_vault: Vault, tenant: Tenant, grants: dict[str, str], origin: Upstream
) -> None:
    with SyncVault(api_key=tenant.key, base_url=shared_vault.base_url) as vault:
        response = vault.request(
            "POST", f"{origin.origin}/v1/echo", grant_id=grants[shape.id], json=BODY, params=QUERY
        )
    _check(origin, shape, tenant, response.status_code)


@pytest.mark.parametrize("shape", SHAPES, ids=shape_ids())
def test_sync_proxy_mode(
    shape: Shape, shared_vault: Vault, tenant: Tenant, grants: dict[str, str], origin: Upstream
) -> None:
    with SyncVault(api_key=tenant.key, base_url=shared_vault.base_url) as vault:
        response = vault.proxy_request(
            "POST", f"{origin.origin}/v1/echo", grant_id=grants[shape.id], json=BODY, params=QUERY
        )
    _check(origin, shape, tenant, response.status_code)
