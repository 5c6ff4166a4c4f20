"""Every ``/sdk/*`` route vaultgate does not serve answers 501 ``not_implemented`` naming the
route, never the 404 that the official client would turn into ``GrantNotFoundError``."""

from __future__ import annotations

import re
import secrets
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import alter_sdk
import httpx
import pytest

from support.injection import Tenant
from vaultgate.injection.signing import sign_request
from vaultgate.server.api.sdk_unserved import CLIENT_ROUTES

# The client routes vaultgate serves (in this branch); every other one must answer 501.
SERVED = {
    ("POST", "/sdk/token"),
    ("POST", "/sdk/proxy"),
    ("POST", "/sdk/oauth/audit/api-call"),
    ("POST", "/sdk/grants/list"),
    ("POST", "/sdk/grants/{grant_id}/mint"),
    ("POST", "/sdk/managed-secrets/{managed_secret_id}/grants"),
    ("POST", "/sdk/oauth/grants/{grant_id}/revoke"),
    ("POST", "/sdk/keys/derive"),
    ("POST", "/sdk/keys/{key_id}/rotate"),
    ("DELETE", "/sdk/keys/{key_id}"),
    ("GET", "/sdk/scopes"),
    ("GET", "/sdk/approvals/{approval_id}"),
    ("GET", "/sdk/approvals/{approval_id}/result"),
    ("GET", "/sdk/agents/me"),
    ("POST", "/sdk/agents"),
    ("GET", "/sdk/agents"),
    ("GET", "/sdk/agents/{agent_id}"),
    ("PATCH", "/sdk/agents/{agent_id}"),
    ("DELETE", "/sdk/agents/{agent_id}"),
    ("POST", "/sdk/agents/{agent_id}/keys"),
    ("GET", "/sdk/agents/{agent_id}/keys"),
    ("PATCH", "/sdk/agents/{agent_id}/keys/{key_id}/deprecate"),
    ("PATCH", "/sdk/agents/{agent_id}/keys/{key_id}/undeprecate"),
    ("DELETE", "/sdk/agents/{agent_id}/keys/{key_id}"),
    ("POST", "/sdk/oauth/connect/session"),
    ("POST", "/sdk/oauth/connect/session/poll"),
}
UNSERVED = [(m, r) for m, r, _ in CLIENT_ROUTES if (m, r) not in SERVED]


def signed(tenant: Tenant, method: str, path: str, body: bytes = b"") -> httpx.Response:
    headers = sign_request(
        tenant.key, method, path, body, now=int(time.time()), nonce=secrets.token_hex(16)
    )
    headers["x-api-key"] = tenant.key
    with httpx.Client(base_url=tenant.vault.base_url, trust_env=False, timeout=30) as client:
        return client.request(method, path, content=body, headers=headers)


def concrete(route: str) -> str:
    return re.sub(r"\{[a-z_]+\}", lambda _: str(uuid.uuid4()), route)


def test_the_table_covers_the_served_routes() -> None:
    known = {(m, r) for m, r, _ in CLIENT_ROUTES}
    assert known >= SERVED
    assert len(UNSERVED) == len(CLIENT_ROUTES) - len(SERVED)


@pytest.mark.parametrize(("method", "route"), UNSERVED, ids=[f"{m} {r}" for m, r in UNSERVED])
def test_each_unserved_client_route_answers_501_naming_it(
    tenant: Tenant, method: str, route: str
) -> None:
    body = b"{}" if method in ("POST", "PATCH") else b""
    response = signed(tenant, method, concrete(route), body)
    assert response.status_code == 501, response.text
    detail = response.json()["detail"]
    assert detail["error"] == "not_implemented"
    assert detail["route"] == f"{method} {route}"
    assert f"{method} {route}" in detail["message"]


def test_a_route_the_client_never_uses_is_501_too_with_the_path_made_printable(
    tenant: Tenant,
) -> None:
    response = signed(tenant, "GET", "/sdk/no-such-route")
    assert response.status_code == 501
    assert response.json()["detail"]["route"] == "GET /sdk/no-such-route"
    odd = signed(tenant, "GET", "/sdk/a%0Ab")  # a newline in the path is not echoed raw
    assert odd.status_code in (401, 501)
    assert "\n" not in odd.text


def test_the_management_api_still_answers_404(tenant: Tenant) -> None:
    with tenant.vault.admin() as admin:
        assert admin.get("/v1/no-such-route").status_code == 404


Call = Callable[[alter_sdk.App], Awaitable[Any]]
GID = "8f14e45f-ceea-467f-a0e6-7c3c1d0d7e11"
OFFICIAL: list[tuple[str, str, Call]] = [
    ("GET /sdk/oauth/provider-catalog", "oauth_providers", lambda a: a.oauth_providers.list()),
    ("GET /sdk/provider-specs", "provider_specs.list", lambda a: a.provider_specs.list()),
    (
        "DELETE /sdk/grants/{grant_id}/delegations/{agent_id}",
        "revoke_delegation",
        lambda a: a.revoke_delegation(GID, GID),
    ),
]


@pytest.mark.parametrize(
    ("route", "call"), [(r, c) for r, _, c in OFFICIAL], ids=[n for _, n, _ in OFFICIAL]
)
async def test_the_official_client_raises_a_backend_error_naming_the_route(
    tenant: Tenant, route: str, call: Call
) -> None:
    async with alter_sdk.App(api_key=tenant.key) as app:
        with pytest.raises(alter_sdk.BackendError) as raised:
            await call(app)
    assert not isinstance(raised.value, alter_sdk.GrantNotFoundError)
    assert route in raised.value.message
    assert raised.value.details.get("error") == "not_implemented"
