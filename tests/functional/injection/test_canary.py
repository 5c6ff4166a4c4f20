"""A canary secret, used every way the product allows and refused every way it refuses, never
appears in the vault's logs, its error bodies, its audit trail or export, its management API, or
(on SQLite) anywhere in the database files. Run on both databases: the audit trail lives there.
"""

from __future__ import annotations

import logging
from pathlib import Path

import alter_sdk
import httpx
import pytest

from support import Upstream, Vault
from support.injection import Tenant, sdk_call
from vaultgate import AlterVault, SyncVault, VaultgateError

TOKEN = "canary-token-Hq4Zs8Ly1Nd"
QUERY_KEY = "canary-query-Ab3Cd5Ef7Gh"
PASSWORD = "canary-password-Mn2Bv6Xc9"
AWS_SECRET = "canary-aws-Wq7Er1Ty3Ui5"
CANARIES = (TOKEN, QUERY_KEY, PASSWORD, AWS_SECRET)


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG)
    for name in ("vaultgate", "uvicorn", "uvicorn.error", "uvicorn.access", "aiohttp", "httpx"):
        caplog.set_level(logging.DEBUG, logger=name)
    return caplog


def _grants(tenant: Tenant, upstream: Upstream) -> dict[str, str]:
    hosts = [upstream.origin]
    policy = {"allowed_paths": ["/ok/**", "/status/**"]}
    return {
        "bearer": tenant.store(
            {
                "credential_type": "bearer",
                "credential": {"token": TOKEN},
            },
            hosts,
            policy=policy,
        ),
        "query": tenant.store(
            {
                "credential_type": "api_key",
                "credential": {"token": QUERY_KEY},
                "injection": {"additional": [{"target": "query", "name": "k", "value": "{token}"}]},
            },
            hosts,
            policy=policy,
        ),
        "basic": tenant.store(
            {"credential_type": "basic", "credential": {"username": "u", "password": PASSWORD}},
            hosts,
            policy=policy,
        ),
        "aws": tenant.store(
            {
                "credential_type": "aws_sigv4",
                "credential": {"access_key_id": "AKIDCANARY", "secret_access_key": AWS_SECRET},
                "aws": {"region": "us-east-1", "service": "execute-api"},
            },
            hosts,
            policy=policy,
        ),
    }


async def _use_every_way(
    vault: Vault,
    tenant: Tenant,
    grants: dict[str, str],
    upstream: Upstream,
    logs: pytest.LogCaptureFixture,
) -> list[str]:
    """Successful and failing calls in every mode; returns the vault-made texts to inspect."""
    seen: list[str] = []
    base = upstream.origin
    async with AlterVault(api_key=tenant.key, base_url=vault.base_url) as client:
        for grant in grants.values():
            await client.request("GET", f"{base}/ok/a", grant_id=grant, reason="canary")
            await client.proxy_request("GET", f"{base}/ok/b", grant_id=grant)
            for path in ("/status/500", "/denied"):
                for call in (client.request, client.proxy_request):
                    with pytest.raises(VaultgateError) as caught:
                        await call("GET", f"{base}{path}", grant_id=grant)
                    seen.append(repr(caught.value) + str(caught.value))
    with SyncVault(api_key=tenant.key, base_url=vault.base_url) as sync:
        sync.request("GET", f"{base}/ok/c", grant_id=grants["bearer"])
    first_official = len(logs.records)
    async with alter_sdk.App(api_key=tenant.key) as app:
        for grant in grants.values():
            await app.request("GET", f"{base}/ok/d", grant_id=grant)
            await app.proxy_request("GET", f"{base}/ok/e", grant_id=grant)
            with pytest.raises(alter_sdk.AlterSDKError) as official:
                await app.request("GET", f"{base}/status/401", grant_id=grant)
            seen.append(repr(official.value) + str(official.value))
    # The official client's own httpx logs the provider URL it sends, injected query key
    # included: that is the client process, not the vault, so those records are set aside.
    logs.records[first_official:] = [
        r for r in logs.records[first_official:] if not r.name.startswith(("httpx", "httpcore"))
    ]
    for grant in grants.values():
        for path in ("/ok/f", "/denied", "/../../x"):
            response = httpx.get(
                f"{vault.base_url}/proxy/{grant}{path}",
                headers={"Authorization": f"Bearer {tenant.key}"},
                trust_env=False,
            )
            if response.status_code >= 400:
                seen.append(response.text)
        blocked = sdk_call(
            vault,
            tenant.key,
            "/sdk/proxy",
            {"method": "GET", "url": "https://evil.example/", "grant_id": grant},
        )
        seen.append(blocked.text)
    return seen


def _management_texts(vault: Vault, tenant: Tenant, grants: dict[str, str]) -> list[str]:
    texts: list[str] = []
    with vault.admin() as admin:
        texts.append(admin.get("/v1/audit/export").text)
        cursor: str | None = None
        while True:
            page = admin.get(
                "/v1/audit", params={"limit": 100, **({"cursor": cursor} if cursor else {})}
            )
            texts.append(page.text)
            cursor = page.json()["next_cursor"]
            if not cursor:
                break
        texts.append(admin.get("/v1/secrets", params={"app_id": tenant.app_id}).text)
        for grant in grants.values():
            texts.append(admin.get(f"/v1/grants/{grant}").text)
        texts.append(admin.get("/v1/audit/verify").text)
    return texts


async def test_the_canary_never_leaks(
    vault: Vault,
    upstream: Upstream,
    logs: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ALTER_BASE_URL", vault.base_url)
    tenant = Tenant.create(vault)
    grants = _grants(tenant, upstream)
    texts = await _use_every_way(vault, tenant, grants, upstream, logs)
    # A durable write after all the others: the group-commit writer keeps order, so once this
    # use is recorded every outcome submitted before it is in the trail too.
    barrier = sdk_call(
        vault,
        tenant.key,
        "/sdk/token",
        {
            "grant_id": grants["bearer"],
            "request": {"method": "GET", "url": f"{upstream.origin}/ok/z"},
        },
    )
    assert barrier.status_code == 200
    texts += _management_texts(vault, tenant, grants)
    texts += [record.getMessage() + repr(record.args) for record in logs.records]
    texts += [logs.handler.format(record) for record in logs.records if record.exc_info]
    everything = "\n".join(texts)
    assert "grant:use" in everything and "grant:outcome" in everything  # the trail was read
    for canary in CANARIES:
        for text in texts:
            assert canary not in text, text[
                max(0, text.find(canary) - 600) : text.find(canary) + 100
            ]
    assert len(upstream.requests) > 20  # the calls really happened


def test_the_database_files_hold_no_plaintext(sqlite_vault: Vault, upstream: Upstream) -> None:
    tenant = Tenant.create(sqlite_vault)
    grant = tenant.store(
        {"credential_type": "bearer", "credential": {"token": TOKEN}}, [upstream.origin]
    )
    response = httpx.get(
        f"{sqlite_vault.base_url}/proxy/{grant}/ok",
        headers={"Authorization": f"Bearer {tenant.key}"},
        trust_env=False,
    )
    assert response.status_code == 200
    files = [p for p in Path(sqlite_vault.data_dir).rglob("*") if p.is_file()]
    assert any(p.name.endswith(".db") for p in files)
    for path in files:
        assert TOKEN.encode() not in path.read_bytes(), path.name
