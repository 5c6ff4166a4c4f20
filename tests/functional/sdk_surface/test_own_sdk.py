"""The project's SDK (``AlterVault`` and ``SyncVault``) against the running vault, side by side
with the official client making the same call: ``list_grants``, ``mint_grant``,
``revoke_grant`` and ``keys.derive``/``rotate``/``revoke``, answers and errors alike.

Each test runs the three clients on one tenant (on SQLite and on PostgreSQL): the answers must
have the same fields and the same values, ids and times aside; the errors the same class, code
and wire fields.
"""

from __future__ import annotations

import uuid
from typing import Any

import vaultgate
from support import Upstream
from support.injection import Tenant
from support.twins import error_shape, masked, plain, three

TOKEN = "canary-own-sdk-Tq58"
MADE = ("grant_id", "created_at", "expires_at", "grant_expires_at", "revoked_at")
KEY_MADE = ("id", "api_key", "key_prefix", "created_at", "expires_at", "name")


def store(tenant: Tenant, origin: Upstream, policy: dict[str, Any] | None = None) -> str:
    body = {"credential_type": "bearer", "credential": {"token": TOKEN}, "policy": policy or {}}
    return tenant.store(body, [origin.origin], name=f"svc-{uuid.uuid4().hex[:8]}")


def assert_no_secret(*values: Any) -> None:
    for value in values:
        text = repr(value) + repr(plain(value) if not isinstance(value, Exception) else "")
        assert TOKEN not in text


async def test_list_grants_answers_what_the_official_client_answers(
    tenant: Tenant, origin: Upstream
) -> None:
    root = store(tenant, origin)
    store(tenant, origin)
    async with three(tenant.key) as clients:
        official, *ours = clients
        await official.call("mint_grant", root, label="child")
        queries: list[dict[str, Any]] = [
            {},
            {"label": "child"},
            {"limit": 1, "offset": 1},
            {"status": "revoked"},
            {"account": "nobody@example.com"},
        ]
        for query in queries:
            expected = plain(await official.call("list_grants", **query))
            for twin in ours:
                got = await twin.call("list_grants", **query)
                assert isinstance(got, vaultgate.UnifiedGrantListResult)
                assert plain(got) == expected, (twin.name, query)
        assert (
            expected["total"] == 0 and len(plain(await ours[0].call("list_grants"))["grants"]) == 3
        )
        refused = [await c.catch("list_grants", end_user_token="eyJ.x.y") for c in clients]
        assert {str(error_shape(e)) for e in refused} == {str(error_shape(refused[0]))}
        assert error_shape(refused[1])["error"] == "user_scoping_not_supported"
        for client in clients:  # refused before sending, as the official client does
            bad = await client.catch("list_grants", limit=0)
            assert type(bad).__name__ == "AlterValueError", (client.name, bad)


async def test_mint_grant_makes_the_same_sibling(tenant: Tenant, origin: Upstream) -> None:
    root = store(tenant, origin, {"allowed_methods": ["GET", "POST"]})
    policy = {"restrictions": {"allowed_methods": ["GET"]}, "max_ttl_seconds": 600}
    async with three(tenant.key) as clients:
        answers = [
            await c.call("mint_grant", root, label=f"ro-{c.name}", grant_policy=policy)
            for c in clients
        ]
        assert all(isinstance(a, vaultgate.GrantInfo) for a in answers[1:])
        shapes = [masked(a, (*MADE, "label")) for a in answers]
        assert shapes[1] == shapes[0] and shapes[2] == shapes[0]
        assert [a.label for a in answers] == ["ro-official", "ro-async", "ro-sync"]
        assert plain(answers[1])["grant_policy"]["allowed_methods"] == ["GET"]
        # The minted grant works and is narrower, whoever minted it.
        sibling = answers[2].grant_id
        got = await clients[1].call("request", "GET", f"{origin.origin}/v1/r", grant_id=sibling)
        assert got.status_code == 200
        denied = await clients[2].catch(
            "request", "POST", f"{origin.origin}/v1/w", grant_id=sibling
        )
        assert isinstance(denied, vaultgate.PolicyViolationError)
        assert_no_secret(*answers)


async def test_mint_grant_errors_are_the_official_clients(tenant: Tenant, origin: Upstream) -> None:
    root = store(tenant, origin, {"allowed_methods": ["GET"]})
    other = Tenant.create(tenant.vault, f"other-{uuid.uuid4().hex[:6]}")
    foreign = store(other, origin)
    async with three(tenant.key) as clients:
        await clients[0].call("mint_grant", root, label="taken")
        cases: list[tuple[tuple[Any, ...], dict[str, Any], str]] = [
            ((root,), {"label": "taken"}, "SiblingLabelConflictError"),
            ((str(uuid.uuid4()),), {"label": "x"}, "GrantNotFoundError"),
            ((foreign,), {"label": "x"}, "GrantNotFoundError"),
            ((root,), {"label": "w", "grant_policy": {"requires_approval": True}}, "BackendError"),
            ((root,), {"label": "t", "grant_tags": ["a"]}, "BackendError"),
        ]
        for args, kwargs, name in cases:
            errors = [await c.catch("mint_grant", *args, **kwargs) for c in clients]
            shapes = [error_shape(e) for e in errors]
            assert shapes[0]["class"] == name, shapes[0]
            assert shapes[1] == shapes[0] and shapes[2] == shapes[0], (kwargs, shapes)
            assert str(errors[1]) == str(errors[0])
        conflict = await clients[2].catch("mint_grant", root, label="taken")
        assert isinstance(conflict, vaultgate.SiblingLabelConflictError)
        assert conflict.label == "taken" and conflict.status_code == 409
        for client in clients:
            local = await client.catch(
                "mint_grant", root, label="d", grant_policy={"default_ttl_seconds": 5}
            )
            assert type(local).__name__ == "AlterValueError"
        assert (await clients[1].call("list_grants", label="w")).total == 0


async def test_revoke_grant_answers_and_refuses_alike(tenant: Tenant, origin: Upstream) -> None:
    root = store(tenant, origin)
    async with three(tenant.key) as clients:
        siblings = [
            (await clients[0].call("mint_grant", root, label=f"s{i}")).grant_id for i in range(3)
        ]
        answers = [
            await c.call("revoke_grant", g, reason="rotated out")
            for c, g in zip(clients, siblings, strict=True)
        ]
        assert isinstance(answers[1], vaultgate.RevokeGrantResult)
        assert [a.grant_id for a in answers] == siblings
        shapes = [masked(a, MADE) for a in answers]
        assert shapes[1] == shapes[0] and shapes[2] == shapes[0]
        gone = await clients[1].catch(
            "request", "GET", f"{origin.origin}/v1/r", grant_id=siblings[2]
        )
        assert isinstance(gone, vaultgate.BackendError)
        for grant in (siblings[0], str(uuid.uuid4())):  # already revoked, never existed
            errors = [await c.catch("revoke_grant", grant) for c in clients]
            assert {str(error_shape(e)) for e in errors} == {str(error_shape(errors[0]))}
            assert isinstance(errors[2], vaultgate.GrantNotFoundError)
            assert str(errors[1]) == str(errors[0])
        for client in clients:
            assert (
                type(await client.catch("revoke_grant", "not-a-uuid")).__name__ == "AlterValueError"
            )


async def test_a_key_without_the_scope_is_refused_alike(tenant: Tenant, origin: Upstream) -> None:
    root = store(tenant, origin)
    async with three(tenant.key) as clients:
        reader = await clients[1].call("keys.derive", scopes=["grants:read"], expires_in=600)
    async with three(reader.api_key) as clients:
        for verb, args, kwargs in (
            ("mint_grant", (root,), {"label": "no"}),
            ("revoke_grant", (root,), {}),
            ("keys.derive", (), {"scopes": ["grants:read"], "expires_in": 60}),
        ):
            errors = [await c.catch(verb, *args, **kwargs) for c in clients]
            shapes = [error_shape(e) for e in errors]
            assert shapes[0]["class"] == "InsufficientScopeError"
            assert shapes[1] == shapes[0] and shapes[2] == shapes[0], (verb, shapes)
            scoped = errors[1]
            assert isinstance(scoped, vaultgate.InsufficientScopeError)
            assert scoped.missing == errors[0].missing and scoped.granted == ["grants:read"]
            assert not isinstance(scoped, vaultgate.PolicyViolationError)
        assert (await clients[2].call("list_grants")).total == 1
    async with three(tenant.key) as clients:
        assert (await clients[1].call("list_grants")).grants[0].status == "active"


async def test_derive_rotate_revoke_answer_the_same_keys(tenant: Tenant) -> None:
    scopes = ["grants:read", "keys:admin"]
    async with three(tenant.key) as clients:
        derived = [
            await c.call(
                "keys.derive",
                scopes=scopes,
                expires_in=600,
                cidr_allowlist=["127.0.0.0/8"],
                name="ci",
            )
            for c in clients
        ]
        assert isinstance(derived[1], vaultgate.MintedKey)
        shapes = [masked(d, KEY_MADE) for d in derived]
        assert shapes[1] == shapes[0] and shapes[2] == shapes[0]
        assert derived[2].api_key not in repr(derived[2])  # shown once, never in a repr
        assert vaultgate.is_valid_key(derived[1].api_key)
    rotated = []
    for index, key in enumerate(derived):
        async with three(key.api_key) as clients:
            client = clients[index]
            rotated.append(await client.call("keys.rotate", key_id=str(key.id), overlap_days=3))
            again = [await c.catch("keys.rotate", key_id=str(key.id)) for c in clients]
            assert {str(error_shape(e)) for e in again} == {str(error_shape(again[0]))}
            assert error_shape(again[1])["error"] == "key_already_rotated"
            for c in clients:
                bad = await c.catch("keys.rotate", key_id=key.id, overlap_days=31)
                assert type(bad).__name__ == "AlterValueError"
    shapes = [masked(r, (*KEY_MADE, "parent_key_id")) for r in rotated]
    assert shapes[1] == shapes[0] and shapes[2] == shapes[0]
    async with three(tenant.key) as clients:
        revoked = [
            await c.call("keys.revoke", key_id=r.id) for c, r in zip(clients, rotated, strict=True)
        ]
        assert isinstance(revoked[2], vaultgate.APIKeyInfo)
        assert not isinstance(revoked[2], vaultgate.MintedKey)
        assert [r.revoked_at is not None for r in revoked] == [True] * 3
        shapes = [masked(r, (*KEY_MADE, "revoked_at", "parent_key_id")) for r in revoked]
        assert shapes[1] == shapes[0] and shapes[2] == shapes[0]
        for missing in (rotated[0].id, uuid.uuid4()):  # already revoked, never existed
            errors = [await c.catch("keys.revoke", key_id=missing) for c in clients]
            assert {str(error_shape(e)) for e in errors} == {str(error_shape(errors[0]))}
            assert error_shape(errors[1])["error"] == "key_not_found"
    async with three(rotated[1].api_key) as clients:
        dead = [await c.catch("list_grants") for c in clients]
        assert [type(e).__name__ for e in dead] == ["KeyRevokedError"] * 3


async def test_a_rotated_key_past_its_overlap_is_refused_alike(tenant: Tenant) -> None:
    async with vaultgate.AlterVault(api_key=tenant.key) as vault:
        old = await vault.keys.derive(scopes=["grants:read", "keys:admin"], expires_in=600)
    with vaultgate.SyncVault(api_key=old.api_key) as holder:
        holder.keys.rotate(key_id=old.id, overlap_days=0)
    async with three(old.api_key) as clients:
        errors = [await c.catch("list_grants") for c in clients]
    assert [type(e).__name__ for e in errors] == ["KeyRotationExpiredError"] * 3
    assert {str(error_shape(e)) for e in errors} == {str(error_shape(errors[0]))}
