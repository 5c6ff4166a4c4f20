"""Provider addressing from the unmodified official client: ``request(provider=..., label=...,
account=...)`` and ``proxy_request(...)`` find the calling app's grant, or raise the client's
ambiguity or not-found error with nothing sent upstream."""

from __future__ import annotations

import uuid
from typing import Any

import alter_sdk
import pytest
from alter_sdk import HttpMethod

from support import Upstream
from support.injection import Tenant

TOKEN = "sk-canary-addressing-Pq83"


def store(tenant: Tenant, origin: Upstream, name: str, **extra: Any) -> str:
    return tenant.store(
        {"credential_type": "bearer", "credential": {"token": TOKEN}},
        [origin.origin],
        name=name,
        **extra,
    )


def uses_of(tenant: Tenant, grant_id: str) -> int:
    with tenant.vault.admin() as admin:
        page = admin.get("/v1/audit", params={"grant_id": grant_id, "event": "grant:use"})
    return len(page.json()["items"])


async def test_provider_names_the_apps_only_grant_in_both_modes(
    tenant: Tenant, origin: Upstream
) -> None:
    grant = store(tenant, origin, "stripe-prod")
    catalogued = tenant.store(
        {"provider": "openai", "credential": {"token": TOKEN}}, [origin.origin], name="llm"
    )
    url = f"{origin.origin}/v1/r"
    async with alter_sdk.App(api_key=tenant.key) as app:
        assert (await app.request(HttpMethod.GET, url, provider="stripe-prod")).status_code == 200
        result = await app.proxy_request(HttpMethod.GET, url, provider="stripe-prod")
        assert result.status_code == 200
        # A catalogue provider's slug names the grant too.
        assert (await app.request(HttpMethod.GET, url, provider="openai")).status_code == 200
    assert uses_of(tenant, grant) == 2
    assert uses_of(tenant, catalogued) == 1
    assert [r.headers["authorization"] for r in origin.requests] == [f"Bearer {TOKEN}"] * 3


async def test_several_grants_are_ambiguous_until_a_label_picks_one(
    tenant: Tenant, origin: Upstream
) -> None:
    root = store(tenant, origin, "search")
    url = f"{origin.origin}/v1/r"
    async with alter_sdk.App(api_key=tenant.key) as app:
        sibling = await app.mint_grant(root, label="ci")
        for call in (app.request, app.proxy_request):
            with pytest.raises(alter_sdk.AmbiguousGrantError) as raised:
                await call(HttpMethod.GET, url, provider="search")
            found = {(c.grant_id, c.label) for c in raised.value.candidates}
            assert found == {(root, "search"), (sibling.grant_id, "ci")}
            assert set(raised.value.grant_ids) == {root, sibling.grant_id}
        assert origin.requests == []
        await app.request(HttpMethod.GET, url, provider="search", label="ci")
        await app.proxy_request(HttpMethod.GET, url, provider="search", label="search")
    assert uses_of(tenant, sibling.grant_id) == 1
    assert uses_of(tenant, root) == 1


async def test_no_match_is_not_found_and_reaches_nothing(tenant: Tenant, origin: Upstream) -> None:
    store(tenant, origin, "mine")
    other = Tenant.create(tenant.vault, f"other-{uuid.uuid4().hex[:6]}")
    store(other, origin, "theirs")
    url = f"{origin.origin}/v1/r"
    async with alter_sdk.App(api_key=tenant.key) as app:
        for call in (app.request, app.proxy_request):
            for address in (
                {"provider": "nope"},
                {"provider": "theirs"},  # another app's grant answers like none at all
                {"provider": "mine", "label": "other-label"},
                {"provider": "mine", "account": "someone@example.com"},
            ):
                with pytest.raises(alter_sdk.GrantNotFoundError):
                    await call(HttpMethod.GET, url, **address)
    assert origin.requests == []


async def test_a_revoked_only_match_says_revoked(tenant: Tenant, origin: Upstream) -> None:
    grant = store(tenant, origin, "gone")
    async with alter_sdk.App(api_key=tenant.key) as app:
        await app.revoke_grant(grant)
        with pytest.raises(alter_sdk.GrantRevokedError):
            await app.request(HttpMethod.GET, f"{origin.origin}/v1/r", provider="gone")
    assert origin.requests == []


async def test_an_end_user_token_finds_only_that_users_grants(
    tenant: Tenant, origin: Upstream
) -> None:
    # "svc" belongs to the app, not to an end user: naming a user finds nothing (connected
    # accounts per user are in tests/functional/oauth/test_connect.py).
    store(tenant, origin, "svc")
    async with alter_sdk.App(api_key=tenant.key) as app:
        with pytest.raises(alter_sdk.GrantNotFoundError):
            await app.proxy_request(
                HttpMethod.GET, f"{origin.origin}/v1/r", provider="svc", user_token="a.b.c"
            )
        with pytest.raises(alter_sdk.GrantNotFoundError):
            await app.request(
                HttpMethod.GET, f"{origin.origin}/v1/r", provider="svc", app_user_id="u-1"
            )
        # The app's own call (no end user) still finds it.
        assert (
            await app.request(HttpMethod.GET, f"{origin.origin}/v1/r", provider="svc")
        ).status_code == 200
    assert len(origin.requests) == 1
