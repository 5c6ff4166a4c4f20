"""AWS SigV4 through every mode: the signature that arrives verifies, and it covers x-amz-*.

AWS refuses a request carrying an ``x-amz-*`` header it was not told was signed (a DynamoDB
``X-Amz-Target``), so every mode that signs on our side must sign them all.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Awaitable, Callable

import alter_sdk
import httpx
import pytest

from support import Upstream, Vault
from support.injection import Tenant, verify_sigv4
from vaultgate import AlterVault, SyncVault
from vaultgate.injection.sigv4 import AwsCredentials

SECRET_KEY = "canary-aws-secret-Zr83Kq1Vw0"
SESSION = "canary-aws-session-Pl55Tn7Ya2"
CREDS = AwsCredentials("AKIDEXAMPLE", SECRET_KEY, SESSION)
TARGET = "DynamoDB_20120810.ListTables"
BODY = {"Limit": 3}


@pytest.fixture(scope="module")
def aws_grant(tenant: Tenant, shared_upstream: Upstream) -> str:
    return tenant.store(
        {
            "credential_type": "aws_sigv4",
            "credential": {
                "access_key_id": CREDS.access_key_id,
                "secret_access_key": SECRET_KEY,
                "session_token": SESSION,
            },
            "aws": {"region": "eu-west-1", "service": "dynamodb"},
        },
        [shared_upstream.origin],
    )


Mode = Callable[[Vault, Tenant, str, str], Awaitable[int]]


async def _sdk_retrieve(vault: Vault, tenant: Tenant, grant: str, url: str) -> int:
    async with AlterVault(api_key=tenant.key, base_url=vault.base_url) as client:
        response = await client.request(
            "POST", url, grant_id=grant, json=BODY, headers={"X-Amz-Target": TARGET}
        )
    return response.status_code


async def _sdk_proxy(vault: Vault, tenant: Tenant, grant: str, url: str) -> int:
    async with AlterVault(api_key=tenant.key, base_url=vault.base_url) as client:
        response = await client.proxy_request(
            "POST", url, grant_id=grant, json=BODY, headers={"X-Amz-Target": TARGET}
        )
    return response.status_code


async def _sync_retrieve(vault: Vault, tenant: Tenant, grant: str, url: str) -> int:
    with SyncVault(api_key=tenant.key, base_url=vault.base_url) as client:
        return client.request(
            "POST", url, grant_id=grant, json=BODY, headers={"X-Amz-Target": TARGET}
        ).status_code


async def _sync_proxy(vault: Vault, tenant: Tenant, grant: str, url: str) -> int:
    with SyncVault(api_key=tenant.key, base_url=vault.base_url) as client:
        return client.proxy_request(
            "POST", url, grant_id=grant, json=BODY, headers={"X-Amz-Target": TARGET}
        ).status_code


async def _official_proxy(vault: Vault, tenant: Tenant, grant: str, url: str) -> int:
    async with alter_sdk.App(api_key=tenant.key) as app:
        result = await app.proxy_request(
            "POST", url, grant_id=grant, json=BODY, extra_headers={"X-Amz-Target": TARGET}
        )
    assert json.loads(base64.b64decode(result.body_b64))["ok"] is True
    return int(result.status_code)


async def _transparent(vault: Vault, tenant: Tenant, grant: str, url: str) -> int:
    path = url.split("/", 3)[3]
    async with httpx.AsyncClient(trust_env=False) as client:
        response = await client.post(
            f"{vault.base_url}/proxy/{grant}/{path}",
            json=BODY,
            headers={"Authorization": f"Bearer {tenant.key}", "X-Amz-Target": TARGET},
        )
    return response.status_code


MODES: dict[str, Mode] = {
    "sdk-retrieve": _sdk_retrieve,
    "sdk-proxy": _sdk_proxy,
    "sync-retrieve": _sync_retrieve,
    "sync-proxy": _sync_proxy,
    "official-proxy": _official_proxy,
    "transparent": _transparent,
}


@pytest.mark.parametrize("mode", MODES, ids=list(MODES))
async def test_sigv4_arrives_signed_over_every_x_amz_header(
    mode: str,
    shared_vault: Vault,
    tenant: Tenant,
    aws_grant: str,
    origin: Upstream,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ALTER_BASE_URL", shared_vault.base_url)
    status = await MODES[mode](shared_vault, tenant, aws_grant, f"{origin.origin}/tables/x")
    assert status == 200
    got = origin.last()
    assert json.loads(got.body) == BODY
    assert got.headers["x-amz-target"] == TARGET
    assert got.headers["x-amz-security-token"] == SESSION
    check = verify_sigv4(got, origin, CREDS, "eu-west-1", "dynamodb")
    assert check.credential_scope.endswith("/eu-west-1/dynamodb/aws4_request")
    assert {"host", "x-amz-date", "x-amz-content-sha256", "x-amz-security-token"} <= set(
        check.signed_headers
    )
    assert "x-amz-target" in check.signed_headers
    assert SECRET_KEY not in repr(got.raw_headers) + got.path + got.body.decode()


async def test_official_retrieve_mode_signs_what_it_knows(
    shared_vault: Vault,
    tenant: Tenant,
    aws_grant: str,
    origin: Upstream,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The official client signs a fixed header set (not x-amz-target); it must still verify."""
    monkeypatch.setenv("ALTER_BASE_URL", shared_vault.base_url)
    async with alter_sdk.App(api_key=tenant.key) as app:
        response = await app.request(
            "POST", f"{origin.origin}/tables/x", grant_id=aws_grant, json=BODY
        )
    assert response.status_code == 200
    got = origin.last()
    check = verify_sigv4(got, origin, CREDS, "eu-west-1", "dynamodb")
    assert "x-amz-security-token" in check.signed_headers
    assert SECRET_KEY not in repr(got.raw_headers) + got.path


def test_a_tampered_signature_does_not_verify(
    shared_vault: Vault, tenant: Tenant, aws_grant: str, origin: Upstream
) -> None:
    """The verifier itself is honest: a changed body no longer matches the signature."""
    response = httpx.post(
        f"{shared_vault.base_url}/proxy/{aws_grant}/tables/x",
        json=BODY,
        headers={"Authorization": f"Bearer {tenant.key}"},
        trust_env=False,
    )
    assert response.status_code == 200
    got = origin.last()
    got.body = b'{"Limit":4}'
    with pytest.raises(AssertionError, match="does not verify"):
        verify_sigv4(got, origin, CREDS, "eu-west-1", "dynamodb")
