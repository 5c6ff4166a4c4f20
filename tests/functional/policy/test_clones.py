"""Clones through the management API: a TTL, only ever narrower, nesting to a limit.

A refused clone names the field at fault and creates nothing; an accepted one is enforced
together with every ancestor's policy on real requests.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from support import Upstream, Vault
from support.channels import Call, transparent
from support.injection import Tenant

TOKEN = "canary-clone-Wd4Hs7"

PARENT_POLICY: dict[str, Any] = {
    "allowed_methods": ["GET", "POST"],
    "allowed_paths": ["/v1/**"],
    "not_before": "2020-01-01T00:00:00+00:00",
    "expires_at": "2040-01-01T00:00:00+00:00",
    "schedule": {
        "timezone": "Europe/Paris",
        "windows": [
            {"days": ["mon", "tue", "wed", "thu", "fri"], "start": "08:00", "end": "18:00"}
        ],
    },
    "ip_allow": ["127.0.0.0/8", "10.0.0.0/8"],
    "ip_deny": ["127.0.0.99/32"],
    "callers": ["agent-a", "agent-b"],
    "rate_limit": {"requests": 10, "per_seconds": 60},
    "require_reason": True,
    "proxy_only": True,
}

# A field set wider than the parent's, one per policy field: each must be refused by name.
WIDER: dict[str, Any] = {
    "allowed_methods": ["GET", "DELETE"],
    "allowed_paths": ["/**"],
    "not_before": "2019-01-01T00:00:00+00:00",
    "expires_at": "2041-01-01T00:00:00+00:00",
    "schedule": {
        "timezone": "Europe/Paris",
        "windows": [{"days": ["sat"], "start": "08:00", "end": "18:00"}],
    },
    "ip_allow": ["0.0.0.0/0"],
    "ip_deny": [],
    "callers": ["agent-a", "agent-z"],
    "rate_limit": {"requests": 20, "per_seconds": 60},
    "require_reason": False,
    "proxy_only": False,
}

NARROWER: dict[str, Any] = {
    "allowed_methods": ["GET"],
    "allowed_paths": ["/v1/reports/*"],
    "not_before": "2021-01-01T00:00:00+00:00",
    "expires_at": "2039-01-01T00:00:00+00:00",
    "schedule": {
        "timezone": "Europe/Paris",
        "windows": [{"days": ["mon"], "start": "09:00", "end": "12:00"}],
    },
    "ip_allow": ["127.0.0.1/32"],
    "ip_deny": ["127.0.0.99/32", "127.0.0.98/32"],
    "callers": ["agent-a"],
    "rate_limit": {"requests": 5, "per_seconds": 60},
    "require_reason": True,
    "proxy_only": True,
}


def _store(tenant: Tenant, upstream: Upstream, policy: dict[str, Any] | None = None) -> str:
    body: dict[str, Any] = {"credential_type": "bearer", "credential": {"token": TOKEN}}
    if policy is not None:
        body["policy"] = policy
    return tenant.store(body, [upstream.origin])


def _clone(vault: Vault, grant: str, **body: Any) -> httpx.Response:
    with vault.admin() as admin:
        return admin.post(f"/v1/grants/{grant}/clone", json=body)


def _ok_clone(vault: Vault, grant: str, **body: Any) -> dict[str, Any]:
    answer = _clone(vault, grant, **body)
    assert answer.status_code == 201, answer.text
    result: dict[str, Any] = answer.json()
    return result


def _grants_of(vault: Vault, grant: str) -> list[dict[str, Any]]:
    with vault.admin() as admin:
        secret = admin.get(f"/v1/grants/{grant}").json()["secret_id"]
        items: list[dict[str, Any]] = admin.get(f"/v1/secrets/{secret}").json()["grants"]
    return items


def _refused(answer: httpx.Response, field: str) -> None:
    assert answer.status_code == 422, answer.text
    detail = answer.json()["detail"]
    assert detail["field"] == field, detail
    assert field in detail["message"]


def test_a_clone_has_the_requested_ttl_and_points_at_its_parent(
    shared_vault: Vault, tenant: Tenant, origin: Upstream
) -> None:
    parent = _store(tenant, origin)
    clone = _ok_clone(shared_vault, parent, name="for the nightly job", ttl_seconds=600)
    assert set(clone) >= {"grant_id", "parent_grant_id", "expires_at", "policy"}
    assert clone["parent_grant_id"] == parent
    assert clone["grant_id"] != parent
    expires = datetime.fromisoformat(clone["expires_at"])
    created = datetime.fromisoformat(clone["created_at"])
    assert expires - created == timedelta(seconds=600)
    # Without a TTL a clone lives as long as its parent (which here never expires).
    assert _ok_clone(shared_vault, parent)["expires_at"] is None


def test_a_narrower_clone_is_accepted_and_stored_as_asked(
    shared_vault: Vault, tenant: Tenant, origin: Upstream
) -> None:
    parent = _store(tenant, origin, PARENT_POLICY)
    clone = _ok_clone(shared_vault, parent, ttl_seconds=60, policy=NARROWER)
    assert clone["policy"]["allowed_methods"] == ["GET"]
    assert clone["policy"]["callers"] == ["agent-a"]
    assert clone["policy"]["rate_limit"] == {"requests": 5, "per_seconds": 60}


def test_fields_a_clone_leaves_out_are_inherited(
    shared_vault: Vault, tenant: Tenant, origin: Upstream
) -> None:
    parent = _store(tenant, origin, PARENT_POLICY)
    clone = _ok_clone(shared_vault, parent, policy={"allowed_methods": ["GET"]})
    expected = {**PARENT_POLICY, "allowed_methods": ["GET"]}
    for name in ("allowed_paths", "callers", "ip_allow", "rate_limit", "proxy_only"):
        assert clone["policy"][name] == expected[name], name


@pytest.mark.parametrize("name", sorted(WIDER))
def test_every_wider_field_is_refused_by_name_and_nothing_is_created(
    name: str, shared_vault: Vault, tenant: Tenant, origin: Upstream
) -> None:
    parent = _store(tenant, origin, PARENT_POLICY)
    before = _grants_of(shared_vault, parent)
    _refused(_clone(shared_vault, parent, policy={name: WIDER[name]}), f"policy.{name}")
    assert _grants_of(shared_vault, parent) == before


@pytest.mark.parametrize("name", ["schedule", "ip_allow", "callers", "allowed_paths"])
def test_removing_a_restriction_is_refused_too(
    name: str, shared_vault: Vault, tenant: Tenant, origin: Upstream
) -> None:
    # JSON null for a field: "unrestricted", which is wider than any restriction.
    parent = _store(tenant, origin, PARENT_POLICY)
    answer = _clone(shared_vault, parent, policy={name: None})
    if answer.status_code == 201:
        # Accepted as "inherit": then it must carry the parent's restriction.
        assert answer.json()["policy"][name] == PARENT_POLICY[name]
    else:
        _refused(answer, f"policy.{name}")


@pytest.mark.parametrize("ttl", [0, -1, -3600, 1.5, "60", True])
def test_a_ttl_that_is_not_a_positive_whole_number_is_refused(
    ttl: Any, shared_vault: Vault, tenant: Tenant, origin: Upstream
) -> None:
    parent = _store(tenant, origin)
    before = _grants_of(shared_vault, parent)
    answer = _clone(shared_vault, parent, ttl_seconds=ttl)
    assert answer.status_code == 422, answer.text
    assert answer.json()["detail"]["field"] == "ttl_seconds"
    assert _grants_of(shared_vault, parent) == before


def test_a_ttl_beyond_the_parents_expiry_is_refused(
    shared_vault: Vault, tenant: Tenant, origin: Upstream
) -> None:
    root = _store(tenant, origin)
    parent = _ok_clone(shared_vault, root, ttl_seconds=600)["grant_id"]
    _refused(_clone(shared_vault, parent, ttl_seconds=3600), "ttl_seconds")
    # Shorter is fine; no TTL at all means "until the parent expires".
    assert _ok_clone(shared_vault, parent, ttl_seconds=300)["expires_at"] is not None
    inherited = _ok_clone(shared_vault, parent)
    assert inherited["expires_at"] is not None
    with shared_vault.admin() as admin:
        parent_expiry = admin.get(f"/v1/grants/{parent}").json()["expires_at"]
    assert inherited["expires_at"] == parent_expiry


def test_a_ttl_beyond_the_parent_policys_expires_at_is_refused(
    shared_vault: Vault, tenant: Tenant, origin: Upstream
) -> None:
    soon = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    parent = _store(tenant, origin, {"expires_at": soon})
    answer = _clone(shared_vault, parent, ttl_seconds=7 * 24 * 3600)
    assert answer.status_code == 422, answer.text
    assert answer.json()["detail"]["field"] in ("ttl_seconds", "policy.expires_at")


def test_clones_of_clones_nest_to_the_depth_limit(
    shared_vault: Vault, tenant: Tenant, origin: Upstream
) -> None:
    grant = _store(tenant, origin)
    chain = [grant]
    while True:
        answer = _clone(shared_vault, chain[-1])
        if answer.status_code != 201:
            break
        chain.append(answer.json()["grant_id"])
        assert len(chain) < 50, "no depth limit"
    assert answer.status_code == 422, answer.text
    assert len(chain) - 1 == 5  # the documented MAX_DEPTH of grants.py
    assert answer.json()["detail"]["field"] == "grant_id"
    # The deepest clone works and is still revoked with the root.
    with shared_vault.admin() as admin:
        assert admin.get(f"/v1/grants/{chain[-1]}").json()["status"] == "active"
        assert admin.delete(f"/v1/grants/{grant}").status_code == 204
        assert {admin.get(f"/v1/grants/{g}").json()["status"] for g in chain} == {"revoked"}


async def test_a_clone_is_held_to_its_own_and_every_ancestors_policy(
    shared_vault: Vault, tenant: Tenant, origin: Upstream
) -> None:
    root = _store(tenant, origin, {"allowed_paths": ["/v1/**"]})
    child = _ok_clone(shared_vault, root, policy={"allowed_methods": ["GET", "POST"]})["grant_id"]
    grandchild = _ok_clone(shared_vault, child, policy={"allowed_methods": ["GET"]})["grant_id"]

    def call(grant: str, method: str, path: str) -> Call:
        return Call(shared_vault, tenant.key, grant, f"{origin.origin}{path}", method=method)

    assert (await transparent(call(grandchild, "GET", "/v1/a"))).ok
    assert (await transparent(call(grandchild, "POST", "/v1/a"))).code == "method_not_allowed"
    assert (await transparent(call(grandchild, "GET", "/v2/a"))).code == "path_not_allowed"
    assert (await transparent(call(child, "POST", "/v1/a"))).ok
    # Narrowing the root later narrows every descendant at once.
    with shared_vault.admin() as admin:
        patched = admin.patch(f"/v1/grants/{root}", json={"policy": {"allowed_paths": ["/v1/x"]}})
    assert patched.status_code == 200, patched.text
    assert (await transparent(call(grandchild, "GET", "/v1/a"))).code == "path_not_allowed"
    assert (await transparent(call(grandchild, "GET", "/v1/x"))).ok
    assert [r.path for r in origin.requests] == ["/v1/a", "/v1/a", "/v1/x"]


async def test_a_clone_cannot_multiply_its_parents_rate_limit(
    shared_vault: Vault, tenant: Tenant, origin: Upstream
) -> None:
    root = _store(tenant, origin, {"rate_limit": {"requests": 2, "per_seconds": 3600}})
    clones = [_ok_clone(shared_vault, root)["grant_id"] for _ in range(3)]
    answers = []
    for grant in [root, *clones]:
        call = Call(shared_vault, tenant.key, grant, f"{origin.origin}/v1/a")
        answers.append(await transparent(call))
    # Two requests an hour for the credential, however many clones share it.
    assert [a.ok for a in answers] == [True, True, False, False]
    assert {a.code for a in answers[2:]} == {"rate_limit_exceeded"}
    assert len(origin.requests) == 2


def test_a_revoked_or_expired_grant_cannot_be_cloned(
    shared_vault: Vault, tenant: Tenant, origin: Upstream
) -> None:
    parent = _store(tenant, origin)
    with shared_vault.admin() as admin:
        assert admin.delete(f"/v1/grants/{parent}").status_code == 204
    answer = _clone(shared_vault, parent)
    assert answer.status_code == 409
    assert answer.json()["detail"]["error"] == "grant_revoked"
    missing = _clone(shared_vault, "0d5f0e6b-2c11-4b7a-9a51-7f1b8f9e3c1d")
    assert missing.status_code == 404
