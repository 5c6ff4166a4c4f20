"""A provider template's optional field (Datadog's application key) is sent only when stored."""

from __future__ import annotations

import uuid

import httpx
import pytest

from support import Upstream, Vault
from support.injection import Tenant

API_KEY = "dd-canary-api-key-0123456789abcdef"
APP_KEY = "dd-canary-app-key-fedcba9876543210abcd"


def _call(vault: Vault, tenant: Tenant, grant: str) -> None:
    response = httpx.get(
        f"{vault.base_url}/proxy/{grant}/api/v1/validate",
        headers={"Authorization": f"Bearer {tenant.key}"},
        trust_env=False,
    )
    assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    "credential",
    [{"token": API_KEY}, {"token": API_KEY, "application_key": ""}],
    ids=["left-out", "left-blank"],
)
def test_without_the_optional_key_only_the_api_key_is_sent(
    shared_vault: Vault, upstream: Upstream, credential: dict[str, str]
) -> None:
    tenant = Tenant.create(shared_vault, f"dd-{uuid.uuid4().hex[:8]}")
    grant = tenant.store({"provider": "datadog", "credential": credential}, [upstream.origin])
    _call(shared_vault, tenant, grant)
    received = upstream.last().headers
    assert received["dd-api-key"] == API_KEY
    assert "dd-application-key" not in received


def test_with_the_optional_key_both_are_sent(shared_vault: Vault, upstream: Upstream) -> None:
    tenant = Tenant.create(shared_vault, f"dd-{uuid.uuid4().hex[:8]}")
    credential = {"token": API_KEY, "application_key": APP_KEY}
    grant = tenant.store({"provider": "datadog", "credential": credential}, [upstream.origin])
    _call(shared_vault, tenant, grant)
    received = upstream.last().headers
    assert (received["dd-api-key"], received["dd-application-key"]) == (API_KEY, APP_KEY)


def test_a_required_field_left_blank_is_still_refused(shared_vault: Vault) -> None:
    tenant = Tenant.create(shared_vault, f"dd-{uuid.uuid4().hex[:8]}")
    with shared_vault.admin() as admin:
        refused = admin.post(
            "/v1/secrets",
            json={
                "app_id": tenant.app_id,
                "name": "dd-blank",
                "provider": "datadog",
                "credential": {"token": "", "application_key": APP_KEY},
            },
        )
    assert refused.status_code == 422
    assert refused.json()["detail"]["field"] == "credential.token"
    assert APP_KEY not in refused.text
