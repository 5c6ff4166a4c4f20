"""Rotation: the next request in every mode carries the new value, the old ciphertext is
destroyed in the database, and a request already in flight finishes with the value it had."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

import vaultgate
from support import Upstream, Vault
from support.audit import events, wait_for_events
from support.channels import CHANNELS, Call, Channel, channel_ids
from support.database import engine_of, sqlite_bytes
from support.injection import Tenant

OLD = "canary-rotate-old-Hq5Vb8"
NEW = "canary-rotate-new-Jm2Xc6"


def _store(tenant: Tenant, upstream: Upstream, **extra: Any) -> tuple[str, str]:
    grant = tenant.store(
        {"credential_type": "bearer", "credential": {"token": OLD}}, [upstream.origin], **extra
    )
    with tenant.vault.admin() as admin:
        secret = admin.get(f"/v1/grants/{grant}").json()["secret_id"]
    return secret, grant


def _rotate(vault: Vault, secret: str, token: str) -> int:
    with vault.admin() as admin:
        answer = admin.post(f"/v1/secrets/{secret}/rotate", json={"credential": {"token": token}})
    assert answer.status_code == 200, answer.text
    assert token not in answer.text
    return int(answer.json()["version"])


def _versions(vault: Vault, secret: str) -> dict[int, dict[str, Any]]:
    with engine_of(vault) as engine, engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT version, ciphertext, wrapped_key, destroyed_at FROM secret_versions"
                " WHERE secret_id = :s"
            ),
            {"s": secret},
        ).mappings()
        return {row["version"]: dict(row) for row in rows}


@pytest.mark.parametrize("channel", CHANNELS, ids=channel_ids())
async def test_the_next_request_after_a_rotation_uses_the_new_value(
    channel: Channel, shared_vault: Vault, tenant: Tenant, origin: Upstream
) -> None:
    secret, grant = _store(tenant, origin)
    clone = _clone(shared_vault, grant)
    call = Call(shared_vault, tenant.key, grant, f"{origin.origin}/v1/a")
    assert (await channel.run(call)).ok
    assert _rotate(shared_vault, secret, NEW) == 2
    assert (await channel.run(call)).ok
    assert (await channel.run(Call(shared_vault, tenant.key, clone, call.url))).ok
    seen = [r.headers["authorization"] for r in origin.requests]
    assert seen == [f"Bearer {OLD}", f"Bearer {NEW}", f"Bearer {NEW}"]


def _clone(vault: Vault, grant: str) -> str:
    with vault.admin() as admin:
        answer = admin.post(f"/v1/grants/{grant}/clone", json={"ttl_seconds": 600})
    assert answer.status_code == 201, answer.text
    return str(answer.json()["grant_id"])


def test_rotation_destroys_the_old_ciphertext_and_keeps_grant_ids(
    vault: Vault, upstream: Upstream
) -> None:
    tenant = Tenant.create(vault)
    secret, grant = _store(tenant, upstream)
    first = _versions(vault, secret)[1]
    assert first["ciphertext"] and first["destroyed_at"] is None
    assert _rotate(vault, secret, NEW) == 2
    assert _rotate(vault, secret, NEW + "-3") == 3
    rows = _versions(vault, secret)
    assert sorted(rows) == [1, 2, 3]
    for version in (1, 2):
        assert rows[version]["ciphertext"] is None
        assert rows[version]["wrapped_key"] is None
        assert rows[version]["destroyed_at"] is not None
    assert rows[3]["ciphertext"] and rows[3]["wrapped_key"]
    with vault.admin() as admin:
        shown = admin.get(f"/v1/secrets/{secret}").json()
    assert shown["version"] == 3 and shown["grant_id"] == grant
    [rotated, again] = events(vault, event="secret:rotate")
    assert (rotated["details"], again["details"]) == ({"version": 2}, {"version": 3})
    assert rotated["secret_id"] == secret


def test_old_ciphertext_leaves_no_bytes_in_the_sqlite_files(
    sqlite_vault: Vault, upstream: Upstream
) -> None:
    tenant = Tenant.create(sqlite_vault)
    secret, _ = _store(tenant, upstream)
    old = _versions(sqlite_vault, secret)[1]
    _rotate(sqlite_vault, secret, NEW)
    data = sqlite_bytes(sqlite_vault)
    assert bytes(old["ciphertext"]) not in data, "the old ciphertext is still on disk"
    assert bytes(old["wrapped_key"]) not in data, "the old wrapped data key is still on disk"
    current = _versions(sqlite_vault, secret)[2]
    assert bytes(current["ciphertext"]) in data  # the scan does see live rows
    with sqlite_vault.admin() as admin:
        assert admin.delete(f"/v1/secrets/{secret}").status_code == 204
    assert bytes(current["ciphertext"]) not in sqlite_bytes(sqlite_vault)


def test_deleting_a_secret_destroys_every_version_and_revokes_its_grants(
    vault: Vault, upstream: Upstream
) -> None:
    tenant = Tenant.create(vault)
    secret, grant = _store(tenant, upstream)
    clone = _clone(vault, grant)
    _rotate(vault, secret, NEW)
    with vault.admin() as admin:
        assert admin.delete(f"/v1/secrets/{secret}").status_code == 204
        statuses = {admin.get(f"/v1/grants/{g}").json()["status"] for g in (grant, clone)}
    assert statuses == {"revoked"}
    assert all(row["ciphertext"] is None for row in _versions(vault, secret).values())
    for g in (grant, clone):
        answer = httpx.get(
            f"{vault.base_url}/proxy/{g}/v1/a",
            headers={"Authorization": f"Bearer {tenant.key}"},
            trust_env=False,
        )
        assert answer.status_code == 403
        assert answer.json()["detail"]["error"] == "grant_revoked"
    assert upstream.requests == []


def test_a_streaming_request_in_flight_finishes_with_its_value(
    shared_vault: Vault, tenant: Tenant, origin: Upstream
) -> None:
    secret, grant = _store(tenant, origin)
    url = f"{shared_vault.base_url}/proxy/{grant}/gated-sse"
    auth = {"Authorization": f"Bearer {tenant.key}"}
    with (
        httpx.Client(trust_env=False, timeout=30) as client,
        client.stream("GET", url, headers=auth) as response,
    ):
        chunks = response.iter_raw()
        first = next(chunks)  # the upstream has answered and now waits on its gate
        assert b"e0" in first
        _rotate(shared_vault, secret, NEW)
        origin.gate.set()
        rest = b"".join(chunks)
    assert response.status_code == 200
    assert b"e1" in rest and b"e2" in rest and b"[DONE]" in rest
    assert not origin.gate_timed_out
    after = httpx.get(
        f"{shared_vault.base_url}/proxy/{grant}/v1/after", headers=auth, trust_env=False
    )
    assert after.status_code == 200
    assert [r.headers["authorization"] for r in origin.requests] == [
        f"Bearer {OLD}",
        f"Bearer {NEW}",
    ]
    outcomes = wait_for_events(shared_vault, 2, grant_id=grant, event="grant:outcome")
    assert [o["upstream_status"] for o in outcomes] == [200, 200]
    assert outcomes[0]["details"]["response_bytes"] == len(first) + len(rest)


async def test_a_buffered_proxy_request_in_flight_finishes_with_its_value(
    shared_vault: Vault, tenant: Tenant, origin: Upstream
) -> None:
    secret, grant = _store(tenant, origin)
    async with vaultgate.AlterVault(api_key=tenant.key, base_url=shared_vault.base_url) as vault:
        pending = asyncio.create_task(
            vault.proxy_request("GET", f"{origin.origin}/gated-sse", grant_id=grant)
        )
        for _ in range(400):
            if origin.requests:
                break
            await asyncio.sleep(0.025)
        assert origin.requests, "the request never reached the upstream"
        await asyncio.to_thread(_rotate, shared_vault, secret, NEW)
        origin.gate.set()
        response = await pending
        assert response.status_code == 200
        assert b"[DONE]" in response.content
        await vault.proxy_request("GET", f"{origin.origin}/v1/after", grant_id=grant)
    assert [r.headers["authorization"] for r in origin.requests] == [
        f"Bearer {OLD}",
        f"Bearer {NEW}",
    ]
