"""The same shapes through the official client, ``alter-sdk==0.29.0``, unmodified.

``ALTER_BASE_URL`` is the only way to point it at a vault, and it is read when ``App`` is built.
"""

from __future__ import annotations

import base64
import json

import alter_sdk
import pytest
from alter_sdk import HttpMethod

from support import Upstream, Vault
from support.injection import SHAPES, Shape, Tenant, assert_injected, shape_ids

BODY = {"prompt": "hello", "n": 1}
QUERY = {"x": "1"}


@pytest.fixture
def official(shared_vault: Vault, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALTER_BASE_URL", shared_vault.base_url)


def _check(origin: Upstream, shape: Shape, tenant: Tenant) -> None:
    got = origin.last()
    assert len(origin.requests) == 1
    assert got.method == "POST"
    assert json.loads(got.body) == BODY
    assert_injected(got, shape, app_key=tenant.key, caller_query=QUERY)


@pytest.mark.usefixtures("official")
@pytest.mark.parametrize("shape", SHAPES, ids=shape_ids())
async def test_official_request_injects_what_the_rules_say(
    shape: Shape, tenant: Tenant, grants: dict[str, str], origin: Upstream
) -> None:
    async with alter_sdk.App(api_key=tenant.key) as app:
        response = await app.request(
            HttpMethod.POST,
            f"{origin.origin}/v1/echo",
            grant_id=grants[shape.id],
            json=BODY,
            query_params=QUERY,
            reason="official shape test",
        )
    assert response.status_code == 200
    _check(origin, shape, tenant)


@pytest.mark.usefixtures("official")
@pytest.mark.parametrize("shape", SHAPES, ids=shape_ids())
async def test_official_proxy_request_injects_in_the_vault(
    shape: Shape, tenant: Tenant, grants: dict[str, str], origin: Upstream
) -> None:
    async with alter_sdk.App(api_key=tenant.key) as app:
        result = await app.proxy_request(
            HttpMethod.POST,
            f"{origin.origin}/v1/echo",
            grant_id=grants[shape.id],
            json=BODY,
            query_params=QUERY,
            reason="official proxy test",
        )
    assert result.status_code == 200
    assert json.loads(base64.b64decode(result.body_b64))["path"] == origin.last().path
    _check(origin, shape, tenant)


@pytest.mark.usefixtures("official")
async def test_official_client_raises_its_typed_errors(
    tenant: Tenant, shared_upstream: Upstream, origin: Upstream, evil: Upstream
) -> None:
    narrow = tenant.store(
        {
            "credential_type": "bearer",
            "credential": {"token": "canary-typed-Lk2"},
            "policy": {"allowed_paths": ["/v1/**"], "allowed_methods": ["GET"]},
        },
        [shared_upstream.origin],
    )
    async with alter_sdk.App(api_key=tenant.key) as app:
        for call in (app.request, app.proxy_request):
            with pytest.raises(alter_sdk.BlockedDestinationError):
                await call(HttpMethod.GET, f"{evil.origin}/v1/x", grant_id=narrow)
            with pytest.raises(alter_sdk.PolicyViolationError) as denied:
                await call(HttpMethod.GET, f"{origin.origin}/admin", grant_id=narrow)
            assert denied.value.policy_error == "path_not_allowed"
            with pytest.raises(alter_sdk.PolicyViolationError):
                await call(HttpMethod.DELETE, f"{origin.origin}/v1/x", grant_id=narrow)
    assert evil.requests == []
    assert origin.requests == []
