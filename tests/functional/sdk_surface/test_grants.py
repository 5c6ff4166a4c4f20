"""Grant administration from the unmodified official client: ``list_grants``, ``mint_grant``,
``create_managed_secret_grant``, ``revoke_grant``, each with its typed result and error paths.

(``alter_sdk`` 0.29.0 has no sync form of these methods: ``App`` is async only.)
"""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import alter_sdk
import pytest
from alter_sdk import (
    AgentPrincipal,
    GrantInfo,
    GrantPolicyInput,
    HttpMethod,
    SystemPrincipal,
)
from alter_sdk.models import CreateGrantResult, ManagedSecretGrantItem, RevokeGrantResult

from support import Upstream
from support.injection import Tenant

TOKEN = "canary-surface-grants-Vb71"


def store(tenant: Tenant, origin: Upstream, policy: dict[str, Any] | None = None) -> dict[str, Any]:
    """A secret bound to the upstream: its name, secret id and root grant id."""
    name = f"svc-{uuid.uuid4().hex[:8]}"
    grant_id = tenant.store(
        {"credential_type": "bearer", "credential": {"token": TOKEN}, "policy": policy or {}},
        [origin.origin],
        name=name,
    )
    with tenant.vault.admin() as admin:
        secret_id = admin.get(f"/v1/grants/{grant_id}").json()["secret_id"]
    return {"name": name, "secret_id": secret_id, "grant_id": grant_id}


def grant_rows(tenant: Tenant, secret_id: str) -> int:
    with tenant.vault.admin() as admin:
        events = admin.get("/v1/audit", params={"app_id": tenant.app_id, "limit": 500}).json()
    made = {"grant:mint", "grant:create", "grant:clone"}
    return sum(1 for e in events["items"] if e["event"] in made and e["secret_id"] == secret_id)


# --- list_grants --------------------------------------------------------------------------------


async def test_list_grants_answers_managed_secret_items_with_filters_and_pages(
    tenant: Tenant, origin: Upstream
) -> None:
    a = store(tenant, origin)
    b = store(tenant, origin)
    other = Tenant.create(tenant.vault, f"other-{uuid.uuid4().hex[:6]}")
    store(other, origin)
    async with alter_sdk.App(api_key=tenant.key) as app:
        minted = await app.mint_grant(a["grant_id"], label="ci-job")
        everything = await app.list_grants()
        assert everything.total == 3 and not everything.has_more
        assert TOKEN not in everything.model_dump_json() + minted.model_dump_json()
        assert all(isinstance(g, ManagedSecretGrantItem) for g in everything.grants)
        child = next(g for g in everything.grants if g.grant_id == minted.grant_id)
        assert child.grant_kind == "managed_secret"
        assert (child.managed_secret_id, child.managed_secret_slug) == (a["secret_id"], a["name"])
        assert (child.label, child.status, child.principal_type) == ("ci-job", "active", "system")
        assert (child.parent_grant_id, child.depth) == (a["grant_id"], 1)
        assert child.credential_id == a["secret_id"] and child.credential_kind == "developer"
        assert child.last_used_at is None
        datetime.fromisoformat(child.created_at.replace("Z", "+00:00"))

        by_slug = await app.list_grants(provider_id=b["name"])
        assert [g.grant_id for g in by_slug.grants] == [b["grant_id"]]
        by_label = await app.list_grants(label="ci-job")
        assert [g.grant_id for g in by_label.grants] == [minted.grant_id]
        assert (await app.list_grants(account="someone@example.com")).total == 0
        assert (await app.list_grants(status="revoked")).total == 0

        page = await app.list_grants(limit=1, offset=1)
        assert (page.total, page.limit, page.offset, page.has_more) == (3, 1, 1, True)
        assert page.grants[0].grant_id == everything.grants[1].grant_id
        last = await app.list_grants(limit=2, offset=2)
        assert len(last.grants) == 1 and not last.has_more


async def test_list_grants_shows_last_used_at_after_a_call(
    tenant: Tenant, origin: Upstream
) -> None:
    a = store(tenant, origin)
    async with alter_sdk.App(api_key=tenant.key) as app:
        await app.proxy_request(HttpMethod.GET, f"{origin.origin}/v1/x", grant_id=a["grant_id"])
        deadline = time.monotonic() + 20
        used = None
        while used is None and time.monotonic() < deadline:
            # last_used_at is written off the request path: wait for it, not for a fixed time.
            (item,) = (await app.list_grants(provider_id=a["name"])).grants
            used = item.last_used_at
            await asyncio.sleep(0.05)
    assert used is not None
    assert datetime.fromisoformat(used.replace("Z", "+00:00")) <= datetime.now(UTC)


async def test_list_grants_refuses_an_end_user_token_rather_than_answering_app_wide(
    tenant: Tenant,
) -> None:
    async with alter_sdk.App(api_key=tenant.key) as app:
        with pytest.raises(alter_sdk.BackendError) as raised:
            await app.list_grants(end_user_token="eyJhbGciOi.x.y")
    assert raised.value.details["error"] == "user_scoping_not_supported"


# --- mint_grant --------------------------------------------------------------------------------


async def test_mint_grant_makes_a_working_sibling_that_is_narrower(
    tenant: Tenant, origin: Upstream
) -> None:
    a = store(tenant, origin, {"allowed_methods": ["GET", "POST"]})
    async with alter_sdk.App(api_key=tenant.key) as app:
        minted = await app.mint_grant(
            a["grant_id"],
            label="read-only",
            grant_policy={"restrictions": {"allowed_methods": ["GET"]}, "max_ttl_seconds": 600},
        )
        assert isinstance(minted, GrantInfo)
        assert (minted.label, minted.credential_id) == ("read-only", a["secret_id"])
        assert minted.provider_id == a["name"] and minted.status == "active"
        assert minted.principal_type == "system"
        assert minted.grant_policy is not None
        assert minted.grant_policy["allowed_methods"] == ["GET"]
        assert minted.expires_at is not None
        expires = datetime.fromisoformat(minted.expires_at.replace("Z", "+00:00"))
        assert timedelta(seconds=590) < expires - datetime.now(UTC) <= timedelta(seconds=600)

        got = await app.request(HttpMethod.GET, f"{origin.origin}/v1/r", grant_id=minted.grant_id)
        assert got.status_code == 200
        assert origin.last().headers["authorization"] == f"Bearer {TOKEN}"
        with pytest.raises(alter_sdk.PolicyViolationError):
            await app.request(HttpMethod.POST, f"{origin.origin}/v1/w", grant_id=minted.grant_id)
    assert len(origin.requests) == 1


async def test_mint_grant_typed_policy_sets_the_expiry(tenant: Tenant, origin: Upstream) -> None:
    a = store(tenant, origin)
    ends = (datetime.now(UTC) + timedelta(hours=1)).replace(microsecond=0)
    async with alter_sdk.App(api_key=tenant.key) as app:
        minted = await app.mint_grant(
            a["grant_id"],
            label="typed",
            grant_policy=GrantPolicyInput(expires_at=ends.isoformat().replace("+00:00", "Z")),
        )
        (item,) = (await app.list_grants(label="typed")).grants
    assert minted.grant_policy is not None
    assert datetime.fromisoformat(minted.grant_policy["expires_at"]) == ends
    assert item.grant_expires_at is not None
    assert datetime.fromisoformat(item.grant_expires_at.replace("Z", "+00:00")) == ends


async def test_mint_grant_duplicate_label_is_the_clients_conflict(
    tenant: Tenant, origin: Upstream
) -> None:
    a = store(tenant, origin)
    async with alter_sdk.App(api_key=tenant.key) as app:
        await app.mint_grant(a["grant_id"], label="twin")
        with pytest.raises(alter_sdk.SiblingLabelConflictError) as raised:
            await app.mint_grant(a["grant_id"], label="twin")
    assert raised.value.label == "twin"
    assert grant_rows(tenant, a["secret_id"]) == 1


async def test_mint_grant_refuses_a_wider_policy_and_creates_nothing(
    tenant: Tenant, origin: Upstream
) -> None:
    a = store(tenant, origin, {"allowed_methods": ["GET"], "allowed_paths": ["/v1/**"]})
    async with alter_sdk.App(api_key=tenant.key) as app:
        for wider in (
            {"restrictions": {"allowed_methods": ["GET", "DELETE"]}},
            {"restrictions": {"allowed_paths": ["/**"]}},
            {"restrictions": {"allowed_methods": "GET"}},
            {"requires_approval": True},
            {"maxTtlSeconds": 60},
        ):
            with pytest.raises(alter_sdk.BackendError) as raised:
                await app.mint_grant(a["grant_id"], label="wide", grant_policy=wider)
            assert raised.value.details["error"] == "invalid_grant_policy", wider
            assert raised.value.details["field"]
        assert (await app.list_grants(label="wide")).total == 0
    assert grant_rows(tenant, a["secret_id"]) == 0


async def test_mint_grant_from_a_missing_foreign_or_revoked_grant_is_not_found(
    tenant: Tenant, origin: Upstream
) -> None:
    other = Tenant.create(tenant.vault, f"other-{uuid.uuid4().hex[:6]}")
    foreign = store(other, origin)
    a = store(tenant, origin)
    with tenant.vault.admin() as admin:
        assert admin.delete(f"/v1/grants/{a['grant_id']}").status_code == 204
    async with alter_sdk.App(api_key=tenant.key) as app:
        for source in (str(uuid.uuid4()), "not-a-uuid", foreign["grant_id"], a["grant_id"]):
            with pytest.raises(alter_sdk.GrantNotFoundError):
                await app.mint_grant(source, label="x")
    assert grant_rows(other, foreign["secret_id"]) == 0


# --- create_managed_secret_grant ---------------------------------------------------------------


async def test_create_managed_secret_grant_for_a_system_principal(
    tenant: Tenant, origin: Upstream
) -> None:
    a = store(tenant, origin, {"allowed_methods": ["GET"]})
    async with alter_sdk.App(api_key=tenant.key) as app:
        made = await app.create_managed_secret_grant(
            a["secret_id"],
            principal=SystemPrincipal(label="nightly"),
            grant_policy=GrantPolicyInput(max_ttl_seconds=3600),
        )
        assert isinstance(made, CreateGrantResult)
        assert (made.principal_type, made.label, made.credential_id) == (
            "system",
            "nightly",
            a["secret_id"],
        )
        uuid.UUID(made.grant_id)
        got = await app.request(HttpMethod.GET, f"{origin.origin}/v1/r", grant_id=made.grant_id)
        assert got.status_code == 200
        # The secret's own grant still binds it: its policy allows GET only.
        with pytest.raises(alter_sdk.PolicyViolationError):
            await app.request(HttpMethod.POST, f"{origin.origin}/v1/r", grant_id=made.grant_id)
        unlabelled = await app.create_managed_secret_grant(
            a["secret_id"], principal=SystemPrincipal(), credential_id=a["secret_id"]
        )
        assert unlabelled.label is None
    assert len(origin.requests) == 1


async def test_create_managed_secret_grant_error_paths(tenant: Tenant, origin: Upstream) -> None:
    ends = datetime.now(UTC) + timedelta(hours=1)
    a = store(tenant, origin, {"allowed_methods": ["GET"], "expires_at": ends.isoformat()})
    foreign = store(Tenant.create(tenant.vault, f"o-{uuid.uuid4().hex[:6]}"), origin)
    async with alter_sdk.App(api_key=tenant.key) as app:
        await app.create_managed_secret_grant(a["secret_id"], principal=SystemPrincipal(label="l"))
        with pytest.raises(alter_sdk.SiblingLabelConflictError):
            await app.create_managed_secret_grant(
                a["secret_id"], principal=SystemPrincipal(label="l")
            )
        for missing in (str(uuid.uuid4()), foreign["secret_id"]):
            with pytest.raises(alter_sdk.GrantNotFoundError):
                await app.create_managed_secret_grant(missing, principal=SystemPrincipal())
        with pytest.raises(alter_sdk.GrantNotFoundError):
            await app.create_managed_secret_grant(
                a["secret_id"], principal=SystemPrincipal(), credential_id=str(uuid.uuid4())
            )
        with pytest.raises(alter_sdk.BackendError) as agent:
            await app.create_managed_secret_grant(a["secret_id"], principal=AgentPrincipal())
        assert agent.value.details["error"] == "principal_not_supported"
        later = (ends + timedelta(hours=1)).isoformat()
        for outliving in (
            GrantPolicyInput(expires_at=later),
            GrantPolicyInput(max_ttl_seconds=3 * 3600),
        ):
            with pytest.raises(alter_sdk.BackendError) as wider:
                await app.create_managed_secret_grant(
                    a["secret_id"], principal=SystemPrincipal(label="w"), grant_policy=outliving
                )
            assert wider.value.details["error"] == "invalid_grant_policy"
    assert grant_rows(tenant, a["secret_id"]) == 1


# --- revoke_grant ------------------------------------------------------------------------------


async def test_revoke_grant_revokes_it_and_everything_made_from_it(
    tenant: Tenant, origin: Upstream
) -> None:
    a = store(tenant, origin)
    async with alter_sdk.App(api_key=tenant.key) as app:
        child = await app.mint_grant(a["grant_id"], label="child")
        result = await app.revoke_grant(a["grant_id"], reason="rotating the CI job")
        assert isinstance(result, RevokeGrantResult)
        assert (result.success, result.grant_id) == (True, a["grant_id"])
        assert datetime.fromisoformat(result.revoked_at.replace("Z", "+00:00")) <= datetime.now(UTC)
        for grant_id in (a["grant_id"], child.grant_id):
            with pytest.raises(alter_sdk.GrantRevokedError):
                await app.request(HttpMethod.GET, f"{origin.origin}/v1/r", grant_id=grant_id)
        statuses = {g.grant_id: g.status for g in (await app.list_grants()).grants}
        assert statuses == {a["grant_id"]: "revoked", child.grant_id: "revoked"}
        assert (await app.list_grants(status="revoked")).total == 2
        with pytest.raises(alter_sdk.GrantNotFoundError):
            await app.revoke_grant(a["grant_id"])
    assert origin.requests == []
    with tenant.vault.admin() as admin:
        events = admin.get(
            "/v1/audit", params={"grant_id": a["grant_id"], "event": "grant:revoke"}
        ).json()["items"]
    assert [e["reason"] for e in events] == ["rotating the CI job"]


async def test_revoke_grant_of_another_app_is_not_found_and_leaves_it_working(
    tenant: Tenant, origin: Upstream
) -> None:
    other = Tenant.create(tenant.vault, f"other-{uuid.uuid4().hex[:6]}")
    foreign = store(other, origin)
    async with alter_sdk.App(api_key=tenant.key) as app:
        for grant_id in (foreign["grant_id"], str(uuid.uuid4())):
            with pytest.raises(alter_sdk.GrantNotFoundError):
                await app.revoke_grant(grant_id)
    async with alter_sdk.App(api_key=other.key) as owner:
        response = await owner.request(
            HttpMethod.GET, f"{origin.origin}/v1/r", grant_id=foreign["grant_id"]
        )
    assert response.status_code == 200
