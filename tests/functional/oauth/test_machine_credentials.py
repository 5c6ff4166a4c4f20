"""OAuth machine credentials against a real authorization server: obtain, inject, refresh, refuse.

The upstream is the authorization server's own protected resource (``/api/whoami``): it answers
200 only for a bearer token it issued and that is still valid, so every 200 below proves the
vault injected a live token.
"""

from __future__ import annotations

import asyncio
import json
import time

import alter_sdk
import httpx
import pytest
from alter_sdk import HttpMethod

from functional.oauth.conftest import client_credentials, refresh_grant, store
from support import Upstream, Vault, free_port
from support.audit import events, wait_until
from support.injection import Tenant, error_of, sdk_call
from support.oauth_server import AuthServer


def _proxy(vault: Vault, tenant: Tenant, grant_id: str) -> httpx.Response:
    return httpx.get(
        f"{vault.base_url}/proxy/{grant_id}/api/whoami",
        headers={"Authorization": f"Bearer {tenant.key}"},
        trust_env=False,
        timeout=30,
    )


def test_client_credentials_token_is_obtained_injected_and_reused(
    vault: Vault, auth: AuthServer
) -> None:
    client = auth.add_client()
    tenant = Tenant.create(vault)
    created = store(vault, tenant, client_credentials(auth, client), [auth.origin])
    for _ in range(3):
        answer = _proxy(vault, tenant, created["grant_id"])
        assert answer.status_code == 200, answer.text
        assert answer.json() == {"client_id": client.client_id, "scope": "read"}
    # One token for three uses: the vault keeps it until it is due.
    assert auth.token_requests == 1
    assert auth.grant_types_seen == ["client_credentials"]
    assert created["credential_type"] == "oauth2_client_credentials"


def test_refresh_token_grant_refreshes_rotates_and_injects(vault: Vault, auth: AuthServer) -> None:
    client = auth.add_client()
    seeded = auth.seed_refresh_token(client)
    tenant = Tenant.create(vault)
    created = store(vault, tenant, refresh_grant(auth, client, seeded), [auth.origin])
    assert _proxy(vault, tenant, created["grant_id"]).status_code == 200
    assert _proxy(vault, tenant, created["grant_id"]).status_code == 200
    assert auth.token_requests == 1
    assert auth.grant_types_seen == ["refresh_token"]
    # The provider rotated the refresh token: the seeded one is dead, the vault holds the new.
    assert seeded not in auth.live_refresh_tokens(client)
    assert len(auth.live_refresh_tokens(client)) == 1


def test_a_fresh_initial_access_token_is_used_without_a_token_request(
    vault: Vault, auth: AuthServer
) -> None:
    client = auth.add_client()
    tenant = Tenant.create(vault)
    body = refresh_grant(auth, client, auth.seed_refresh_token(client))
    body["credential"]["access_token"] = "initial-not-issued-by-the-server"
    body["credential"]["expires_at"] = str(2**31)
    created = store(vault, tenant, body, [auth.origin])
    # The resource refuses it (the server never issued it), which proves it was the one sent.
    assert _proxy(vault, tenant, created["grant_id"]).status_code == 401
    assert auth.token_requests == 0


def test_sdk_token_releases_the_access_token_and_its_lifetime_only(
    vault: Vault, auth: AuthServer
) -> None:
    client = auth.add_client()
    seeded = auth.seed_refresh_token(client)
    tenant = Tenant.create(vault)
    created = store(vault, tenant, refresh_grant(auth, client, seeded), [auth.origin])
    answer = sdk_call(
        vault,
        tenant.key,
        "/sdk/token",
        {"grant_id": created["grant_id"], "request": {"method": "GET", "url": auth.origin}},
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    issued = auth.issued_access_tokens()
    assert body["access_token"] == issued[-1]
    assert body["injection_header"] == "Authorization"
    assert body["injection_format"] == "Bearer {token}"
    assert isinstance(body["expires_in"], int) and 0 < body["expires_in"] <= 3600
    assert body["additional_credentials"] is None
    rotated = auth.live_refresh_tokens(client)[0]
    for secret in (client.client_secret, seeded, rotated):
        assert secret not in answer.text


@pytest.mark.usefixtures("official_client")
async def test_the_official_client_calls_with_the_vaults_token(
    vault: Vault, auth: AuthServer
) -> None:
    client = auth.add_client()
    tenant = Tenant.create(vault)
    created = store(vault, tenant, client_credentials(auth, client), [auth.origin])
    async with alter_sdk.App(api_key=tenant.key) as app:
        response = await app.request(
            HttpMethod.GET, f"{auth.origin}/api/whoami", grant_id=created["grant_id"]
        )
        proxied = await app.proxy_request(
            HttpMethod.GET, f"{auth.origin}/api/whoami", grant_id=created["grant_id"]
        )
    assert response.status_code == 200
    assert response.json()["client_id"] == client.client_id
    assert proxied.status_code == 200
    assert auth.token_requests == 1


@pytest.mark.usefixtures("official_client")
async def test_a_refused_refresh_marks_the_grant_and_raises_credential_revoked(
    vault: Vault, auth: AuthServer
) -> None:
    client = auth.add_client()
    seeded = auth.seed_refresh_token(client)
    auth.revoke_refresh_tokens(client)  # the user withdrew consent at the provider
    tenant = Tenant.create(vault)
    created = store(vault, tenant, refresh_grant(auth, client, seeded), [auth.origin])
    async with alter_sdk.App(api_key=tenant.key) as app:
        for _ in range(2):
            with pytest.raises(alter_sdk.CredentialRevokedError) as raised:
                await app.request(
                    HttpMethod.GET, f"{auth.origin}/api/whoami", grant_id=created["grant_id"]
                )
            assert raised.value.grant_id == created["grant_id"]
    # Marked after the first refusal: the second use did not ask the provider again.
    assert auth.token_requests == 1
    refreshes = events(vault, event="oauth:refresh")
    assert [(e["outcome"], e["code"]) for e in refreshes] == [("error", "reauth_required")]
    assert refreshes[0]["details"]["provider_error"] == "invalid_grant"
    wait_until(lambda: len(events(vault, event="grant:outcome")) == 2)
    outcomes = events(vault, event="grant:outcome")
    assert {e["code"] for e in outcomes} == {"credential_revoked"}
    # Rotating the secret with a fresh consent clears the mark.
    fresh = auth.add_client()
    body = refresh_grant(auth, fresh, auth.seed_refresh_token(fresh))
    with vault.admin() as admin:
        client_rotated = admin.post(
            f"/v1/secrets/{created['secret_id']}/rotate", json={"credential": body["credential"]}
        )
    assert client_rotated.status_code == 200, client_rotated.text
    assert _proxy(vault, tenant, created["grant_id"]).status_code == 200


def test_no_secret_value_in_responses_or_audit_events(vault: Vault, auth: AuthServer) -> None:
    client = auth.add_client(client_secret="canary-client-secret-Qx81Zr")
    seeded = auth.seed_refresh_token(client)
    tenant = Tenant.create(vault)
    created = store(vault, tenant, refresh_grant(auth, client, seeded), [auth.origin])
    assert _proxy(vault, tenant, created["grant_id"]).status_code == 200
    with vault.admin() as admin:
        shown = [
            admin.get(f"/v1/secrets/{created['secret_id']}").text,
            admin.get(f"/v1/grants/{created['grant_id']}").text,
            json.dumps(created),
        ]
    wait_until(lambda: any(e["event"] == "grant:outcome" for e in events(vault)))
    trail = json.dumps(events(vault))
    values = [client.client_secret, seeded, *auth.live_refresh_tokens(client)]
    values += auth.issued_access_tokens()
    for value in values:
        assert value not in trail
        assert all(value not in text for text in shown)


def test_credential_checks_name_the_field(vault: Vault, auth: AuthServer) -> None:
    client = auth.add_client()
    tenant = Tenant.create(vault)
    cases = [
        (
            client_credentials(auth, client, client_auth_method="private_key_jwt"),
            "credential.client_auth_method",
        ),
        (
            client_credentials(auth, client, token_url="ftp://example.com/token"),
            "credential.token_url",
        ),
        (
            {
                **client_credentials(auth, client),
                "injection": {"header": "Authorization", "format": "Bearer {client_secret}"},
            },
            "injection.format",
        ),
    ]
    for body, field in cases:
        payload = {"app_id": tenant.app_id, "name": "bad", **body, "allowed_hosts": [auth.origin]}
        with vault.admin() as admin:
            answer = admin.post("/v1/secrets", json=payload)
        assert answer.status_code == 422, answer.text
        assert answer.json()["detail"]["field"] == field
        assert client.client_secret not in answer.text
    expired = refresh_grant(auth, client, "rt", expires_at="soon")
    payload = {"app_id": tenant.app_id, "name": "bad", **expired, "allowed_hosts": [auth.origin]}
    with vault.admin() as admin:
        answer = admin.post("/v1/secrets", json=payload)
    assert answer.status_code == 422
    assert error_of(answer) == "validation_error"


def test_a_clone_narrows_an_oauth_grant_like_any_other(vault: Vault, auth: AuthServer) -> None:
    client = auth.add_client()
    tenant = Tenant.create(vault)
    created = store(vault, tenant, client_credentials(auth, client), [auth.origin])
    with vault.admin() as admin:
        cloned = admin.post(
            f"/v1/grants/{created['grant_id']}/clone",
            json={"policy": {"allowed_paths": ["/api/**"], "allowed_methods": ["GET"]}},
        )
    assert cloned.status_code == 201, cloned.text
    clone = cloned.json()["grant_id"]
    assert _proxy(vault, tenant, clone).status_code == 200
    outside = httpx.get(
        f"{vault.base_url}/proxy/{clone}/oauth/token",
        headers={"Authorization": f"Bearer {tenant.key}"},
        trust_env=False,
        timeout=30,
    )
    assert outside.status_code == 403
    assert auth.token_requests == 1


def test_an_unreachable_token_endpoint_serves_the_still_valid_token(
    vault: Vault, upstream: Upstream
) -> None:
    tenant = Tenant.create(vault)
    body = {
        "credential_type": "oauth2_refresh_token",
        "credential": {
            # Nothing listens there: every token request fails to connect.
            "token_url": f"http://127.0.0.1:{free_port()}/oauth/token",
            "client_id": "c",
            "client_secret": "canary-unreachable-secret-Hq3",
            "refresh_token": "canary-unreachable-refresh-Pz8",
            "access_token": "still-valid-access-token",
            # Valid for 45 more seconds, so due (inside the 60 s margin) but usable; not 10, which
            # a loaded machine (parallel test workers) can spend before the second call.
            "expires_at": str(int(time.time()) + 45),
        },
    }
    created = store(vault, tenant, body, [upstream.origin])
    for _ in range(2):
        answer = httpx.get(
            f"{vault.base_url}/proxy/{created['grant_id']}/echo",
            headers={"Authorization": f"Bearer {tenant.key}"},
            trust_env=False,
            timeout=30,
        )
        assert answer.status_code == 200, answer.text
        assert upstream.last().headers["authorization"] == "Bearer still-valid-access-token"
    failures = events(vault, event="oauth:refresh")
    assert failures and {(e["outcome"], e["code"]) for e in failures} == {
        ("error", "token_endpoint_unreachable")
    }
    assert "canary-unreachable" not in json.dumps(failures)


async def test_concurrent_uses_in_one_vault_share_one_token_request(
    vault: Vault, auth: AuthServer
) -> None:
    client = auth.add_client()
    tenant = Tenant.create(vault)
    created = store(
        vault, tenant, refresh_grant(auth, client, auth.seed_refresh_token(client)), [auth.origin]
    )
    limits = httpx.Limits(max_connections=50, max_keepalive_connections=0)
    async with httpx.AsyncClient(limits=limits, timeout=60, trust_env=False) as http:
        answers = await asyncio.gather(
            *(
                http.get(
                    f"{vault.base_url}/proxy/{created['grant_id']}/api/whoami",
                    headers={"Authorization": f"Bearer {tenant.key}"},
                )
                for _ in range(50)
            )
        )
    assert [a.status_code for a in answers] == [200] * 50
    assert auth.token_requests == 1
