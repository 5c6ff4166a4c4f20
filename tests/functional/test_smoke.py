from __future__ import annotations

import httpx

from support import Upstream, Vault


def test_store_a_secret_and_use_it_through_the_transparent_proxy(
    vault: Vault, upstream: Upstream
) -> None:
    app_id, key = vault.make_app_key()
    with vault.admin() as admin:
        created = admin.post(
            "/v1/secrets",
            json={
                "app_id": app_id,
                "name": "openai",
                "credential_type": "bearer",
                "credential": {"token": "sk-canary-123"},
                "allowed_hosts": [upstream.origin],
            },
        )
        assert created.status_code == 201, created.text
        grant_id = created.json()["grant_id"]
    response = httpx.get(
        f"{vault.base_url}/proxy/{grant_id}/v1/models?x=1",
        headers={"Authorization": f"Bearer {key}"},
        trust_env=False,
    )
    assert response.status_code == 200, response.text
    got = upstream.last()
    assert got.path == "/v1/models?x=1"
    assert got.headers["authorization"] == "Bearer sk-canary-123"
    assert key not in str(got.raw_headers)
