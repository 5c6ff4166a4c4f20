"""Managed agents from the unmodified official client: ``app.agents.*``, agent keys and
``Agent.me()``; a request made with an agent's key is attributed to the verified agent, and a
grant's ``callers`` can name agents (``agent:<name>``), matched against the key, never the text.

The client has no synchronous form of these calls (``App``/``Agent`` are async only).
"""

from __future__ import annotations

import secrets
import time
import uuid
from typing import Any

import alter_sdk
import httpx
import pytest
import sqlalchemy as sa
from alter_sdk import HttpMethod
from alter_sdk.models import AgentCreateResult, AgentInfo, AgentKey, AgentKeyMintResult

from support import Upstream
from support.audit import wait_for_events
from support.database import engine_of
from support.injection import Tenant
from vaultgate.injection.signing import sign_request
from vaultgate.server.storage.tables import audit_events

TOKEN = "canary-agents-Vb61"


def name() -> str:
    return f"bot-{uuid.uuid4().hex[:8]}"


def store(tenant: Tenant, origin: Upstream, policy: dict[str, Any] | None = None) -> str:
    extra = {"policy": policy} if policy else {}
    return tenant.store(
        {"credential_type": "bearer", "credential": {"token": TOKEN}}, [origin.origin], **extra
    )


def signed(key: str, base_url: str, method: str, path: str, body: bytes = b"") -> httpx.Response:
    headers = sign_request(
        key, method, path, body, now=int(time.time()), nonce=secrets.token_hex(16)
    )
    headers["x-api-key"] = key
    return httpx.request(method, base_url + path, content=body, headers=headers, trust_env=False)


def audit(tenant: Tenant, **params: Any) -> list[dict[str, Any]]:
    with tenant.vault.admin() as admin:
        answer = admin.get("/v1/audit", params={"limit": 500, **params})
    assert answer.status_code == 200, answer.text
    return list(answer.json()["items"])


async def test_create_get_list_and_get_by_name(tenant: Tenant) -> None:
    other = Tenant.create(tenant.vault, f"other-{uuid.uuid4().hex[:6]}")
    bot = name()
    async with alter_sdk.App(api_key=tenant.key) as app:
        created = await app.agents.create(
            name=bot,
            scopes={"github": ["repo"]},
            display_name="Support bot",
            metadata={"team": "ops"},
        )
        assert isinstance(created, AgentCreateResult)
        assert (created.name, created.display_name, created.type, created.status) == (
            bot,
            "Support bot",
            "agent",
            "active",
        )
        assert (created.scopes, created.metadata, created.version) == (
            {"github": ["repo"]},
            {"team": "ops"},
            1,
        )
        assert created.api_key is not None and alter_sdk.is_valid_key(created.api_key)
        fetched = await app.agents.get(str(created.id))
        assert isinstance(fetched, AgentInfo) and fetched.id == created.id
        service = await app.agents.create(name=name(), scopes={}, type="service")
        assert service.type == "service"
        listed = await app.agents.list(limit=1)
        assert (listed.total, listed.limit, listed.has_more) == (2, 1, True)
        assert [a.id for a in listed.agents] == [created.id]
        rest = await app.agents.list(limit=1, offset=1)
        assert [a.id for a in rest.agents] == [service.id] and rest.has_more is False
        by_name = await app.agents.get_by_name(bot)
        assert by_name is not None and by_name.id == created.id
        assert await app.agents.get_by_name("nobody-here") is None
        with pytest.raises(alter_sdk.AgentNameExistsError):
            await app.agents.create(name=bot, scopes={})
        with pytest.raises(alter_sdk.AgentNotFoundError):
            await app.agents.get(str(uuid.uuid4()))
        with pytest.raises(alter_sdk.BackendError) as bad:
            await app.agents.create(name="Not A Name!", scopes={})
        assert bad.value.details["field"] == "name"
    # Another app's agent answers exactly like one that does not exist.
    async with alter_sdk.App(api_key=other.key) as foreign:
        with pytest.raises(alter_sdk.AgentNotFoundError):
            await foreign.agents.get(str(created.id))
        assert await foreign.agents.get_by_name(bot) is None
        assert (await foreign.agents.list()).total == 0


async def test_update_suspend_and_resume(tenant: Tenant, origin: Upstream) -> None:
    grant = store(tenant, origin)
    url = f"{origin.origin}/v1/r"
    async with alter_sdk.App(api_key=tenant.key) as app:
        bot = await app.agents.create(name=name(), scopes={"github": ["repo"]})
        updated = await app.agents.update(str(bot.id), display_name="Renamed")
        assert (updated.display_name, updated.version) == ("Renamed", 2)
        same = await app.agents.update(str(bot.id), display_name="Renamed")
        assert same.version == 2  # nothing changed, nothing bumped
        narrowed = await app.agents.update(
            str(bot.id), scopes={"github": ["read"]}, expected_version=2, grace_seconds=0
        )
        assert (narrowed.scopes, narrowed.version) == ({"github": ["read"]}, 3)
        with pytest.raises(alter_sdk.AgentConcurrentUpdateError):
            await app.agents.update(str(bot.id), scopes={}, expected_version=2)
        with pytest.raises(alter_sdk.BackendError) as policy:
            await app.agents.update(str(bot.id), policy={"requires_approval": {"approvers": []}})
        assert policy.value.details["error"] == "agent_policy_not_supported"
        suspended = await app.agents.suspend(str(bot.id))
        assert suspended.status == "inactive"
    assert bot.api_key is not None
    async with alter_sdk.Agent(api_key=bot.api_key) as agent:
        with pytest.raises(alter_sdk.AgentInactiveError):
            await agent.proxy_request(HttpMethod.GET, url, grant_id=grant)
        with pytest.raises(alter_sdk.AgentInactiveError):
            await agent.request(HttpMethod.GET, url, grant_id=grant)
        # A suspended agent may still look at itself, to see why.
        assert (await agent.me()).status == "inactive"
    transparent = httpx.get(
        f"{tenant.vault.base_url}/proxy/{grant}/v1/t",
        headers={"x-api-key": bot.api_key},
        trust_env=False,
    )
    assert transparent.status_code == 401
    assert transparent.json()["detail"]["error"] == "agent_inactive"
    assert origin.requests == []
    async with alter_sdk.App(api_key=tenant.key) as app:
        assert (await app.agents.resume(str(bot.id))).status == "active"
    async with alter_sdk.Agent(api_key=bot.api_key) as agent:
        answer = await agent.proxy_request(HttpMethod.GET, url, grant_id=grant)
    assert answer.status_code == 200
    assert origin.last().headers["authorization"] == f"Bearer {TOKEN}"


async def test_delete_revokes_the_agent_and_its_keys(tenant: Tenant, origin: Upstream) -> None:
    grant = store(tenant, origin)
    url = f"{origin.origin}/v1/r"
    async with alter_sdk.App(api_key=tenant.key) as app:
        bot = await app.agents.create(name=name(), scopes={})
        second = await app.agents.mint_key(str(bot.id))
        gone = await app.agents.delete(str(bot.id))
        assert (gone.status, gone.version) == ("revoked", bot.version + 1)
        again = await app.agents.delete(str(bot.id))
        assert (again.status, again.version) == ("revoked", gone.version)
        assert (await app.agents.list()).total == 0
        assert [a.id for a in (await app.agents.list(include_revoked=True)).agents] == [bot.id]
        assert await app.agents.get_by_name(bot.name) is None
        with pytest.raises(alter_sdk.AgentNotFoundError):
            await app.agents.mint_key(str(bot.id))
        with pytest.raises(alter_sdk.AgentRevokedError):
            await app.agents.resume(str(bot.id))
        keys = await app.agents.list_keys(str(bot.id))
        assert {k.status for k in keys.items} == {"revoked"}
        # The name is free again once the agent is deleted.
        await app.agents.create(name=bot.name, scopes={})
    for key in (bot.api_key, second.api_key):
        assert key is not None
        async with alter_sdk.Agent(api_key=key) as dead:
            with pytest.raises(alter_sdk.KeyRevokedError):
                await dead.proxy_request(HttpMethod.GET, url, grant_id=grant)
            with pytest.raises(alter_sdk.KeyRevokedError):
                await dead.me()
    assert origin.requests == []


async def test_agent_keys_mint_list_deprecate_and_revoke(tenant: Tenant, origin: Upstream) -> None:
    grant = store(tenant, origin)
    async with alter_sdk.App(api_key=tenant.key) as app:
        bot = await app.agents.create(name=name(), scopes={})
        first = bot.key_id
        minted = await app.agents.mint_key(str(bot.id))
        assert isinstance(minted, AgentKeyMintResult) and minted.api_key is not None
        assert (minted.name, minted.status) == (f"{bot.name}-2", "active")
        listed = await app.agents.list_keys(str(bot.id))
        assert [k.key_id for k in listed.items] == [first, minted.key_id]
        assert all(isinstance(k, AgentKey) and k.key_prefix for k in listed.items)
        assert minted.api_key not in str(listed.model_dump())
        deprecated = await app.agents.deprecate_key(str(bot.id), str(first))
        assert deprecated.status == "deprecated" and deprecated.deprecated_at is not None
        twice = await app.agents.deprecate_key(str(bot.id), str(first))
        assert twice.deprecated_at == deprecated.deprecated_at  # the timer is not reset
    assert bot.api_key is not None
    base = tenant.vault.base_url
    during = signed(bot.api_key, base, "POST", "/sdk/grants/list", b"{}")
    assert during.status_code == 200, during.text
    assert during.headers["x-alter-key-deprecated"] == "true"
    transparent = httpx.get(
        f"{base}/proxy/{grant}/v1/t", headers={"x-api-key": bot.api_key}, trust_env=False
    )
    assert transparent.status_code == 200
    assert transparent.headers["x-alter-key-deprecated"] == "true"
    fresh = signed(minted.api_key, base, "POST", "/sdk/grants/list", b"{}")
    assert "x-alter-key-deprecated" not in fresh.headers
    async with alter_sdk.App(api_key=tenant.key) as app:
        back = await app.agents.undeprecate_key(str(bot.id), str(first))
        assert back.status == "active"
        revoked = await app.agents.revoke_key(str(bot.id), str(first))
        assert revoked.status == "revoked"
        assert (await app.agents.revoke_key(str(bot.id), str(first))).status == "revoked"
        with pytest.raises(alter_sdk.KeyAlreadyRevokedError):
            await app.agents.deprecate_key(str(bot.id), str(first))
        with pytest.raises(alter_sdk.LastActiveKeyError):
            await app.agents.revoke_key(str(bot.id), str(minted.key_id))
        with pytest.raises(alter_sdk.KeyNotFoundError):
            await app.agents.deprecate_key(str(bot.id), str(uuid.uuid4()))
        with pytest.raises(alter_sdk.AgentNotFoundError):
            await app.agents.list_keys(str(uuid.uuid4()))
        forced = await app.agents.revoke_key(str(bot.id), str(minted.key_id), force=True)
        assert forced.status == "revoked"
    after = signed(bot.api_key, base, "POST", "/sdk/grants/list", b"{}")
    assert (after.status_code, after.json()["detail"]["error"]) == (401, "key_revoked")
    assert "x-alter-key-deprecated" not in after.headers


async def test_me_needs_an_agent_key(tenant: Tenant) -> None:
    async with alter_sdk.App(api_key=tenant.key) as app:
        bot = await app.agents.create(name=name(), scopes={"slack": ["chat:write"]})
    assert bot.api_key is not None
    async with alter_sdk.Agent(api_key=bot.api_key) as agent:
        me = await agent.me()
    assert (me.id, me.name, me.scopes) == (bot.id, bot.name, {"slack": ["chat:write"]})
    async with alter_sdk.Agent(api_key=tenant.key) as not_an_agent:
        with pytest.raises(alter_sdk.MeRequiresAgentKeyError):
            await not_an_agent.me()


async def test_an_agent_key_cannot_administer(tenant: Tenant) -> None:
    async with alter_sdk.App(api_key=tenant.key) as app:
        bot = await app.agents.create(name=name(), scopes={})
        reader = await app.keys.derive(scopes=["agents:read"], expires_in=600)
    assert bot.api_key is not None
    async with alter_sdk.App(api_key=bot.api_key) as agent_as_app:
        with pytest.raises(alter_sdk.AgentCannotMintSubagentsError):
            await agent_as_app.agents.create(name=name(), scopes={})
        with pytest.raises(alter_sdk.AgentCannotMintSubagentsError):
            await agent_as_app.agents.mint_key(str(bot.id))
        with pytest.raises(alter_sdk.InsufficientScopeError) as listing:
            await agent_as_app.agents.list()
        assert listing.value.missing == ["agents:read"]
        with pytest.raises(alter_sdk.InsufficientScopeError):
            await agent_as_app.keys.derive(scopes=["grants:read"], expires_in=60)
    async with alter_sdk.App(api_key=reader.api_key) as read_only:
        assert (await read_only.agents.get(str(bot.id))).id == bot.id
        with pytest.raises(alter_sdk.InsufficientScopeError) as writing:
            await read_only.agents.suspend(str(bot.id))
        assert writing.value.missing == ["agents:write"]


async def test_uses_are_attributed_to_the_verified_agent(tenant: Tenant, origin: Upstream) -> None:
    grant = store(tenant, origin)
    url = f"{origin.origin}/v1/r"
    async with alter_sdk.App(api_key=tenant.key) as app:
        bot = await app.agents.create(name=name(), scopes={})
    assert bot.api_key is not None
    # The caller text is whatever the key holder asserts; the agent is what its key proves.
    async with alter_sdk.Agent(api_key=bot.api_key, caller="someone-else") as agent:
        await agent.proxy_request(HttpMethod.GET, url, grant_id=grant)
        await agent.request(HttpMethod.GET, url, grant_id=grant)
    async with alter_sdk.App(api_key=tenant.key, caller=f"agent:{bot.name}") as app:
        await app.proxy_request(HttpMethod.GET, url, grant_id=grant)
    uses = audit(tenant, grant_id=grant, event="grant:use")
    assert len(uses) == 3
    by_agent = [u for u in uses if (u["details"] or {}).get("agent")]
    assert sorted(u["mode"] for u in by_agent) == ["proxy", "retrieve"]
    for use in by_agent:
        assert use["details"]["agent"] == {"id": str(bot.id), "name": bot.name}
        assert use["caller"] == "someone-else"
    (claimed,) = [u for u in uses if not (u["details"] or {}).get("agent")]
    assert claimed["caller"] == f"agent:{bot.name}"
    assert {u["seq"] for u in audit(tenant, agent=bot.name, event="grant:use")} == {
        u["seq"] for u in by_agent
    }
    with tenant.vault.admin() as admin:
        assert admin.get("/v1/audit/verify").json()["ok"] is True
    # The attribution is part of the chain: rewriting it is found by verify.
    seq = by_agent[0]["seq"]
    with engine_of(tenant.vault) as engine, engine.begin() as conn:
        conn.execute(
            sa.update(audit_events)
            .where(audit_events.c.seq == seq)
            .values(details={"agent": {"id": str(uuid.uuid4()), "name": "forged"}})
        )
    with tenant.vault.admin() as admin:
        report = admin.get("/v1/audit/verify").json()
    assert (report["ok"], report["first_bad_seq"]) == (False, seq)


async def test_a_policy_can_name_agents_and_only_their_keys_pass(
    tenant: Tenant, origin: Upstream
) -> None:
    async with alter_sdk.App(api_key=tenant.key) as app:
        deployer = await app.agents.create(name=name(), scopes={})
        other = await app.agents.create(name=name(), scopes={})
    grant = store(tenant, origin, {"callers": [f"agent:{deployer.name}", "ci-runner"]})
    url = f"{origin.origin}/v1/r"
    assert deployer.api_key is not None and other.api_key is not None
    async with alter_sdk.Agent(api_key=deployer.api_key) as agent:
        assert (await agent.proxy_request(HttpMethod.GET, url, grant_id=grant)).status_code == 200
    async with alter_sdk.App(api_key=tenant.key, caller="ci-runner") as ci:
        assert (await ci.proxy_request(HttpMethod.GET, url, grant_id=grant)).status_code == 200
    assert len(origin.requests) == 2
    refused = [
        (tenant.key, f"agent:{deployer.name}"),  # the app key claiming to be the agent
        (other.api_key, f"agent:{deployer.name}"),  # another agent claiming it too
        (other.api_key, None),
    ]
    for key, caller in refused:
        async with alter_sdk.App(api_key=key, caller=caller) as client:
            with pytest.raises(alter_sdk.PolicyViolationError) as raised:
                await client.proxy_request(HttpMethod.GET, url, grant_id=grant)
        assert raised.value.policy_error == "caller_not_allowed"
    assert len(origin.requests) == 2
    # Denials are written in the background, after the refusal has answered.
    denials = wait_for_events(tenant.vault, 3, grant_id=grant, event="grant:deny")
    assert TOKEN not in str(denials)
