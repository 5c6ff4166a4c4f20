"""Scoped keys from the unmodified official client: ``scopes.list()``, ``keys.derive``,
``keys.rotate`` (grace and ``X-Alter-Key-Deprecated``), ``keys.revoke`` (with descendants), and
a scope table: every scoped route against a key without its scope."""

from __future__ import annotations

import re
import secrets
import time
import uuid
from datetime import UTC, datetime, timedelta

import alter_sdk
import httpx
import pytest
from alter_sdk import HttpMethod
from alter_sdk.models import APIKeyInfo, MintedKey, ScopeCatalog

from support import Upstream
from support.injection import Tenant
from vaultgate.injection.signing import sign_request
from vaultgate.server.auth.scopes import ALL_SCOPES, ANY_OF, NEVER_DERIVED, ROUTE_SCOPES

TOKEN = "canary-keys-Rz40"
DERIVABLE = sorted(ALL_SCOPES - NEVER_DERIVED)


def key_id(tenant: Tenant) -> str:
    with tenant.vault.admin() as admin:
        keys = admin.get(f"/v1/apps/{tenant.app_id}/keys").json()["items"]
    return str(keys[0]["id"])  # the app's first key: the one Tenant.create made


def signed(key: str, base_url: str, method: str, path: str, body: bytes = b"") -> httpx.Response:
    headers = sign_request(
        key, method, path, body, now=int(time.time()), nonce=secrets.token_hex(16)
    )
    headers["x-api-key"] = key
    return httpx.request(method, base_url + path, content=body, headers=headers, trust_env=False)


def store(tenant: Tenant, origin: Upstream) -> str:
    return tenant.store(
        {"credential_type": "bearer", "credential": {"token": TOKEN}}, [origin.origin]
    )


async def test_the_scope_catalog(tenant: Tenant) -> None:
    async with alter_sdk.App(api_key=tenant.key) as app:
        found = await app.scopes.list()
    assert isinstance(found, ScopeCatalog)
    listed = {f"{r}:{v}" for r, res in found.resources.items() for v in res.verbs}
    assert listed == set(ALL_SCOPES)
    assert found.scope_version == 1


async def test_derive_makes_a_narrower_child_key(tenant: Tenant, origin: Upstream) -> None:
    grant = store(tenant, origin)
    async with alter_sdk.App(api_key=tenant.key) as app:
        child = await app.keys.derive(
            scopes=["grants:read"], expires_in=600, cidr_allowlist=["127.0.0.0/8"], name="ci"
        )
    assert isinstance(child, MintedKey)
    assert (child.key_type, child.scopes, child.name) == ("dk", ["grants:read"], "ci")
    assert str(child.parent_key_id) == key_id(tenant)
    assert child.cidr_allowlist == ["127.0.0.0/8"]
    assert child.expires_at is not None
    assert timedelta(0) < child.expires_at - datetime.now(UTC) <= timedelta(seconds=600)
    async with alter_sdk.App(api_key=child.api_key) as scoped:
        assert (await scoped.list_grants()).total == 1
        with pytest.raises(alter_sdk.InsufficientScopeError) as raised:
            await scoped.request(HttpMethod.GET, f"{origin.origin}/v1/r", grant_id=grant)
        assert raised.value.missing == ["tokens:retrieve"]
        with pytest.raises(alter_sdk.InsufficientScopeError):
            await scoped.keys.derive(scopes=["grants:read"], expires_in=60)
    assert origin.requests == []


async def test_derive_refuses_to_widen_its_parent(tenant: Tenant) -> None:
    async with alter_sdk.App(api_key=tenant.key) as app:
        parent = await app.keys.derive(
            scopes=["grants:read", "keys:admin"], expires_in=600, cidr_allowlist=["127.0.0.0/8"]
        )
    with tenant.vault.admin() as admin:
        key = admin.post(
            f"/v1/apps/{tenant.app_id}/keys",
            json={
                "name": "short",
                "expires_at": (datetime.now(UTC) + timedelta(minutes=5)).isoformat(),
            },
        ).json()
    async with alter_sdk.App(api_key=key["api_key"]) as short:
        with pytest.raises(alter_sdk.BackendError) as late:
            await short.keys.derive(scopes=["grants:read"], expires_in=3600)
        assert late.value.details["field"] == "expires_in"
        with pytest.raises(alter_sdk.BackendError) as unknown:
            await short.keys.derive(scopes=["grants:everything"], expires_in=60)
        assert unknown.value.details["field"] == "scopes"
    # A derived key cannot derive at all, so a wider grandchild cannot exist either.
    async with alter_sdk.App(api_key=parent.api_key) as scoped:
        with pytest.raises(alter_sdk.InsufficientScopeError):
            await scoped.keys.derive(scopes=["tokens:retrieve"], expires_in=60)


async def test_a_key_outside_its_cidr_allow_list_is_refused(
    tenant: Tenant, origin: Upstream
) -> None:
    grant = store(tenant, origin)
    async with alter_sdk.App(api_key=tenant.key) as app:
        child = await app.keys.derive(
            scopes=["proxy:execute"], expires_in=600, cidr_allowlist=["10.0.0.0/8"]
        )
    async with alter_sdk.App(api_key=child.api_key) as scoped:
        with pytest.raises(alter_sdk.PolicyViolationError) as raised:
            await scoped.proxy_request(HttpMethod.GET, f"{origin.origin}/v1/r", grant_id=grant)
    assert raised.value.policy_error == "ip_not_allowed"
    assert origin.requests == []


async def test_rotate_keeps_the_old_key_working_flagged_until_the_grace_ends(
    tenant: Tenant,
) -> None:
    async with alter_sdk.App(api_key=tenant.key) as app:
        old = await app.keys.derive(scopes=["grants:read", "keys:admin"], expires_in=600)
        brief = await app.keys.derive(scopes=["grants:read", "keys:admin"], expires_in=600)
    async with alter_sdk.App(api_key=old.api_key) as holder:
        new = await holder.keys.rotate(key_id=str(old.id), overlap_days=7)
        assert isinstance(new, MintedKey) and new.id != old.id and new.api_key != old.api_key
        assert (new.scopes, new.key_type) == (old.scopes, "dk")
        with pytest.raises(alter_sdk.BackendError) as again:
            await holder.keys.rotate(key_id=str(old.id))
        assert again.value.details["error"] == "key_already_rotated"
    base = tenant.vault.base_url
    during = signed(old.api_key, base, "POST", "/sdk/grants/list", b"{}")
    assert during.status_code == 200
    assert during.headers["x-alter-key-deprecated"] == "true"
    fresh = signed(new.api_key, base, "POST", "/sdk/grants/list", b"{}")
    assert fresh.status_code == 200 and "x-alter-key-deprecated" not in fresh.headers
    async with alter_sdk.App(api_key=brief.api_key) as holder:
        await holder.keys.rotate(key_id=str(brief.id), overlap_days=0)
    async with alter_sdk.App(api_key=brief.api_key) as expired:
        with pytest.raises(alter_sdk.KeyRotationExpiredError):
            await expired.list_grants()


async def test_revoke_takes_the_derived_keys_with_it(tenant: Tenant) -> None:
    other = Tenant.create(tenant.vault, f"other-{uuid.uuid4().hex[:6]}")
    async with alter_sdk.App(api_key=tenant.key) as app:
        first = await app.keys.derive(scopes=["grants:read"], expires_in=600)
        second = await app.keys.derive(scopes=["grants:read"], expires_in=600)
        gone = await app.keys.revoke(key_id=str(first.id))
        assert isinstance(gone, APIKeyInfo) and gone.status == "revoked"
        with pytest.raises(alter_sdk.BackendError) as foreign:
            await app.keys.revoke(key_id=key_id(other))
        assert foreign.value.details["error"] == "key_not_found"
    async with alter_sdk.App(api_key=first.api_key) as revoked:
        with pytest.raises(alter_sdk.KeyRevokedError):
            await revoked.list_grants()
    async with alter_sdk.App(api_key=second.api_key) as alive:
        await alive.list_grants()
    async with alter_sdk.App(api_key=tenant.key) as app:
        await app.keys.revoke(key_id=key_id(tenant))
    for key in (tenant.key, second.api_key):
        async with alter_sdk.App(api_key=key) as dead:
            with pytest.raises(alter_sdk.KeyRevokedError):
                await dead.list_grants()
    async with alter_sdk.App(api_key=other.key) as untouched:
        await untouched.list_grants()


@pytest.mark.parametrize(
    ("method", "route"), sorted(ROUTE_SCOPES), ids=[f"{m} {r}" for m, r in sorted(ROUTE_SCOPES)]
)
async def test_each_scoped_route_refuses_a_key_without_its_scope(
    tenant: Tenant, method: str, route: str
) -> None:
    needed = ROUTE_SCOPES[(method, route)]
    # A route that takes any one of several scopes is refused only to a key with none of them.
    alternatives = sorted(ANY_OF.get(needed, {needed}))
    async with alter_sdk.App(api_key=tenant.key) as app:
        child = await app.keys.derive(
            scopes=[s for s in DERIVABLE if s not in alternatives], expires_in=600
        )
    path = re.sub(r"\{[a-z_]+\}", lambda _: str(uuid.uuid4()), route)
    body = b"{}" if method in ("POST", "PATCH") else b""
    answer = signed(child.api_key, tenant.vault.base_url, method, path, body)
    assert answer.status_code == 403, answer.text
    detail = answer.json()["detail"]
    assert (detail["error"], detail["missing"]) == ("insufficient_scope", alternatives)
    assert detail["required_any_of"] is (len(alternatives) > 1)


async def test_an_approval_poll_takes_approvals_read_or_proxy_execute(tenant: Tenant) -> None:
    path = f"/sdk/approvals/{uuid.uuid4()}"
    async with alter_sdk.App(api_key=tenant.key) as app:
        poller = await app.keys.derive(scopes=["approvals:read"], expires_in=600)
        caller = await app.keys.derive(scopes=["proxy:execute"], expires_in=600)
    for key in (poller.api_key, caller.api_key):
        answer = signed(key, tenant.vault.base_url, "GET", path)
        # Past the scope check: an approval that does not exist.
        assert answer.status_code == 404, answer.text


async def test_the_transparent_proxy_needs_proxy_execute_too(
    tenant: Tenant, origin: Upstream
) -> None:
    grant = store(tenant, origin)
    async with alter_sdk.App(api_key=tenant.key) as app:
        reader = await app.keys.derive(scopes=["grants:read"], expires_in=600)
        caller = await app.keys.derive(scopes=["proxy:execute"], expires_in=600)
    url = f"{tenant.vault.base_url}/proxy/{grant}/v1/t"
    refused = httpx.get(url, headers={"x-api-key": reader.api_key}, trust_env=False)
    assert refused.status_code == 403
    assert refused.json()["detail"]["missing"] == ["proxy:execute"]
    assert origin.requests == []
    allowed = httpx.get(url, headers={"x-api-key": caller.api_key}, trust_env=False)
    assert allowed.status_code == 200
    assert origin.last().headers["authorization"] == f"Bearer {TOKEN}"
