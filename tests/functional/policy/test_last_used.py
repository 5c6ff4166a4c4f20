"""``last_used_at`` of a grant, its secret and the key that used it follows real use (and only
allowed use), written in the background."""

from __future__ import annotations

from typing import Any

import httpx

from support import Upstream, Vault
from support.audit import wait_until
from support.injection import Tenant


def _shown(vault: Vault, tenant: Tenant, grant: str) -> dict[str, Any]:
    with vault.admin() as admin:
        shown = admin.get(f"/v1/grants/{grant}").json()
        secret = admin.get(f"/v1/secrets/{shown['secret_id']}").json()
        [key] = admin.get(f"/v1/apps/{tenant.app_id}/keys").json()["items"]
    return {"grant": shown, "secret": secret, "key": key}


def test_an_allowed_use_marks_grant_secret_and_key(
    shared_vault: Vault, tenant: Tenant, origin: Upstream
) -> None:
    grant = tenant.store(
        {
            "credential_type": "bearer",
            "credential": {"token": "canary-lastused-Ks2"},
            "policy": {"allowed_methods": ["GET"]},
        },
        [origin.origin],
    )
    url = f"{shared_vault.base_url}/proxy/{grant}/v1/a"
    auth = {"Authorization": f"Bearer {tenant.key}"}
    assert httpx.delete(url, headers=auth, trust_env=False).status_code == 403
    before = _shown(shared_vault, tenant, grant)
    assert before["grant"]["last_used_at"] is None
    assert before["secret"]["last_used_at"] is None

    assert httpx.get(url, headers=auth, trust_env=False).status_code == 200

    def marked() -> bool:
        now = _shown(shared_vault, tenant, grant)
        return all(now[part]["last_used_at"] is not None for part in ("grant", "secret", "key"))

    wait_until(marked)
    after = _shown(shared_vault, tenant, grant)
    assert after["grant"]["last_used_at"] == after["secret"]["last_used_at"]
