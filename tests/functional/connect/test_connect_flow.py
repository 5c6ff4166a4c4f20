"""End-user Connect through the unmodified official client, against Authlib's authorization
server on loopback: the grant it makes injects the provider's access token, provider addressing
finds one user's account (and calls several ambiguous), and revoking reaches the provider.

The consent is driven over plain HTTP here (open the link, press Authorize); the same flow in a
headless Chromium is tests/e2e/connect.
"""

from __future__ import annotations

import alter_sdk
import pytest
from alter_sdk import HttpMethod

from support.connect_flow import Connectable, authorize, register, visit
from support.oauth_authcode_server import User


async def connect_one(
    c: Connectable, app: alter_sdk.App, user: str | None
) -> alter_sdk.ConnectResult:
    kwargs = {"user_token": user} if user is not None else {}
    session = await app.create_connect_session(allowed_providers=["github"], **kwargs)
    assert session.connect_url.startswith(f"{c.vault.base_url}/connect/")
    done = visit(authorize(session.connect_url))
    assert done.status_code == 200 and "Connected" in done.text, done.text
    results = await app.poll_connect_session(session.session_token, timeout=30, poll_interval=0.1)
    assert len(results) == 1
    return results[0]


async def test_a_connected_account_injects_its_token_and_is_found_by_its_user(
    connectable: Connectable,
) -> None:
    c = connectable
    async with alter_sdk.App(api_key=c.tenant.key) as app:
        result = await connect_one(c, app, "user-1")
        assert result.provider_id == "github"
        assert result.account_identifier == "octocat"
        assert result.operation == "creation"
        assert result.scopes == ["repo", "read:user"]
        issued = c.auth.issued()
        assert len(issued) == 1 and issued[0].refresh_token
        url = f"{c.api.origin}/user/repos"
        assert (await app.request(HttpMethod.GET, url, grant_id=result.grant_id)).status_code == 200
        by_user = await app.request(HttpMethod.GET, url, provider="github", app_user_id="user-1")
        assert by_user.status_code == 200
        proxied = await app.proxy_request(
            HttpMethod.GET, url, provider="github", user_token="user-1"
        )
        assert proxied.status_code == 200
        with pytest.raises(alter_sdk.GrantNotFoundError):
            await app.request(HttpMethod.GET, url, provider="github", app_user_id="user-2")
    assert [r.headers["authorization"] for r in c.api.requests] == [
        f"Bearer {issued[0].access_token}"
    ] * 3
    assert c.auth.token_count("authorization_code") == 1
    # The exchange sent the PKCE verifier and authenticated the client.
    sent = c.auth.token_requests[0]
    assert sent["code_verifier"] and sent["client_id"] == "vault-client"
    with c.vault.admin() as admin:
        listed = admin.get("/v1/oauth-connections", params={"app_user_id": "user-1"}).json()
    assert [(i["account_login"], i["grant_id"]) for i in listed["items"]] == [
        ("octocat", result.grant_id)
    ]


async def test_two_accounts_of_one_user_are_ambiguous_until_account_picks_one(
    connectable: Connectable,
) -> None:
    c = connectable
    url = f"{c.api.origin}/user"
    async with alter_sdk.App(api_key=c.tenant.key) as app:
        first = await connect_one(c, app, "user-1")
        c.auth.signed_in = User(2, "hubot")
        second = await connect_one(c, app, "user-1")
        assert second.account_identifier == "hubot" and second.grant_id != first.grant_id
        with pytest.raises(alter_sdk.AmbiguousGrantError) as raised:
            await app.request(HttpMethod.GET, url, provider="github", app_user_id="user-1")
        assert sorted(raised.value.grant_ids) == sorted([first.grant_id, second.grant_id])
        assert raised.value.account_identifiers == ["hubot", "octocat"]
        assert c.api.requests == []
        picked = await app.request(
            HttpMethod.GET, url, provider="github", app_user_id="user-1", account="hubot"
        )
        assert picked.status_code == 200
        # Connecting hubot again for the same user re-authorizes the same grant.
        again = await connect_one(c, app, "user-1")
        assert (again.grant_id, again.operation) == (second.grant_id, "reauth")
        # Another user's single account is not ambiguous with these.
        c.auth.signed_in = User(3, "monalisa")
        other = await connect_one(c, app, "user-2")
        got = await app.request(HttpMethod.GET, url, provider="github", app_user_id="user-2")
        assert got.status_code == 200
    hubot, monalisa = c.auth.issued()[1:3], c.auth.issued()[3]
    assert c.api.requests[0].headers["authorization"] == f"Bearer {hubot[0].access_token}"
    assert c.api.requests[1].headers["authorization"] == f"Bearer {monalisa.access_token}"
    assert other.account_identifier == "monalisa"


async def test_revoking_a_connected_grant_revokes_the_token_at_the_provider(
    connectable: Connectable,
) -> None:
    c = connectable
    async with alter_sdk.App(api_key=c.tenant.key) as app:
        result = await connect_one(c, app, "user-1")
        refresh = c.auth.issued()[0].refresh_token
        with c.vault.admin() as admin:
            assert admin.delete(f"/v1/grants/{result.grant_id}").status_code == 204
            listed = admin.get("/v1/oauth-connections").json()["items"]
        assert [r["token"] for r in c.auth.revocations] == [refresh]
        assert c.auth.revocations[0]["token_type_hint"] == "refresh_token"
        assert c.auth.issued()[0].revoked
        assert listed[0]["status"] == "disconnected"
        with pytest.raises(alter_sdk.GrantRevokedError):
            await app.request(HttpMethod.GET, f"{c.api.origin}/u", grant_id=result.grant_id)
    assert c.api.requests == []


async def test_oauth_apps_never_answer_their_secret_and_name_bad_fields(
    connectable: Connectable,
) -> None:
    c = connectable
    assert c.oauth_app["has_client_secret"] is True
    assert "client_secret" not in c.oauth_app
    assert c.oauth_app["redirect_uri"] == f"{c.vault.base_url}/connect/callback"
    with c.vault.admin() as admin:
        again = register(c.vault, c.tenant.app_id, c.auth, c.api)
        assert again.status_code == 409
        assert again.json()["detail"]["error"] == "duplicate_oauth_app"
        bad = admin.post(
            "/v1/oauth-apps",
            json={"app_id": c.tenant.app_id, "provider": "x", "template": "nope", "client_id": "i"},
        )
        assert bad.status_code == 422 and "template" in bad.json()["detail"]["message"]
        custom = admin.post(
            "/v1/oauth-apps",
            json={
                "app_id": c.tenant.app_id,
                "provider": "acme",
                "client_id": "i",
                "client_secret": "s",
            },
        )
        assert custom.status_code == 422 and "authorize_url" in custom.json()["detail"]["message"]
        templates = admin.get("/v1/oauth-templates").json()["items"]
    assert {t["template"] for t in templates} == {"github", "google", "slack", "microsoft"}
    async with alter_sdk.App(api_key=c.tenant.key) as app:
        with pytest.raises(alter_sdk.AlterSDKError) as raised:
            await app.create_connect_session(allowed_providers=["gitlab"])
        assert "gitlab" in str(raised.value)
        with pytest.raises(alter_sdk.AlterSDKError) as unsupported:
            await app.create_connect_session(allowed_providers=["github"], agent="some-agent")
        assert "agent" in str(unsupported.value)
