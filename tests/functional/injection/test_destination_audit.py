"""One destination, one story in the audit trail, whichever mode asked for it.

A ``grant:use`` means the credential was opened for the request; a destination refused or not
resolvable is decided before that, so it is a ``grant:deny`` in retrieve mode and in both proxy
modes alike (it used to be allowed-then-error in the proxy and a denial in retrieve mode).
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from support import Upstream, Vault
from support.audit import events, wait_until
from support.injection import Tenant, error_of, sdk_call

TOKEN = "canary-unreachable-Hq61Rd"
NOWHERE = "http://nowhere.invalid"  # RFC 6761: never resolves


def _call(vault: Vault, tenant: Tenant, grant: str, mode: str, origin: str) -> httpx.Response:
    url = f"{origin}/v1/x"
    if mode == "retrieve":
        payload: dict[str, Any] = {"grant_id": grant, "request": {"method": "GET", "url": url}}
        return sdk_call(vault, tenant.key, "/sdk/token", payload)
    if mode == "proxy":
        payload = {"grant_id": grant, "method": "GET", "url": url}
        return sdk_call(vault, tenant.key, "/sdk/proxy", payload)
    return httpx.get(
        f"{vault.base_url}/proxy/{grant}/v1/x",
        headers={"Authorization": f"Bearer {tenant.key}", "X-Vaultgate-Target": origin},
        trust_env=False,
    )


def _trail(vault: Vault, grant: str, count: int) -> list[tuple[str, str, str | None]]:
    found: list[dict[str, Any]] = []

    def enough() -> bool:
        found[:] = [e for e in events(vault, grant_id=grant) if e["event"].startswith("grant:")]
        return len(found) >= count

    wait_until(enough)
    return [(e["event"], e["outcome"], e["code"]) for e in found]


MODES = ["retrieve", "proxy", "transparent"]


@pytest.mark.parametrize("mode", MODES)
def test_an_unresolvable_destination_is_a_denial_in_every_mode(
    mode: str, shared_vault: Vault, tenant: Tenant
) -> None:
    grant = tenant.store({"credential_type": "bearer", "credential": {"token": TOKEN}}, [NOWHERE])
    response = _call(shared_vault, tenant, grant, mode, NOWHERE)
    assert response.status_code == 502, response.text
    assert error_of(response) == "upstream_error"
    assert TOKEN not in response.text
    assert _trail(shared_vault, grant, 1) == [("grant:deny", "denied", "upstream_error")]


@pytest.mark.parametrize("mode", MODES)
def test_a_reachable_destination_is_a_use_in_every_mode(
    mode: str, shared_vault: Vault, tenant: Tenant, origin: Upstream
) -> None:
    grant = tenant.store(
        {"credential_type": "bearer", "credential": {"token": TOKEN}}, [origin.origin]
    )
    response = _call(shared_vault, tenant, grant, mode, origin.origin)
    assert response.status_code == 200, response.text
    trail = _trail(shared_vault, grant, 1 if mode == "retrieve" else 2)
    assert trail[0] == ("grant:use", "allowed", "allowed")
    if mode != "retrieve":  # retrieve mode's outcome is the SDK's own report
        assert trail[1][:2] == ("grant:outcome", "ok")
