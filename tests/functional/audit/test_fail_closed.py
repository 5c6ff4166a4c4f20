"""Fail closed through the API: when the audit store cannot be written, every mode answers 503
``audit_unavailable``, the upstream receives nothing and ``/sdk/token`` releases no credential;
when the store comes back, the vault serves again without a restart.

The stores break for real: a SQLite database that may not grow (``PRAGMA max_page_count``) and
a PostgreSQL database that refuses connections.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import alter_sdk
import httpx
import psycopg
import pytest
from sqlalchemy.engine import Engine

import vaultgate
from support import Upstream, Vault
from support.audit import verify
from support.channels import CHANNELS, Call, Channel, Result
from support.faults import PageCap, run_vault_on
from support.injection import Tenant, sdk_call
from vaultgate.server.storage.engine import create_engine

TOKEN = "canary-failclosed-Xe9Ws4"
PG_ADMIN_URL = os.environ.get("VAULTGATE_TEST_PG", "postgresql://root@127.0.0.1:5432/postgres")
# Near the stored cap: each refused use needs a page the full database does not have.
REASON = "fill " + "r" * 1000


def _store(tenant: Tenant, upstream: Upstream) -> str:
    return tenant.store(
        {"credential_type": "bearer", "credential": {"token": TOKEN}}, [upstream.origin]
    )


def _transparent(vault: Vault, key: str, grant: str) -> httpx.Response:
    return httpx.get(
        f"{vault.base_url}/proxy/{grant}/v1/a",
        headers={"Authorization": f"Bearer {key}", "X-Vaultgate-Reason": REASON},
        trust_env=False,
        timeout=30,
    )


def assert_unavailable(result: Result, channel: Channel) -> None:
    assert result.status == 503, (channel, result)
    if channel.official:
        assert isinstance(result.error, alter_sdk.BackendError)
    elif channel.name == "transparent":
        assert result.code == "audit_unavailable"
    else:
        assert isinstance(result.error, vaultgate.ServiceUnavailableError)
        assert result.code == "audit_unavailable"


def assert_token_withheld(vault: Vault, key: str, grant: str, upstream: Upstream) -> None:
    payload = {
        "grant_id": grant,
        "reason": REASON,
        "request": {"method": "GET", "url": f"{upstream.origin}/v1/a"},
    }
    answer = sdk_call(vault, key, "/sdk/token", payload)
    assert answer.status_code == 503, answer.text
    assert answer.json()["detail"]["error"] == "audit_unavailable"
    assert TOKEN not in answer.text and "access_token" not in answer.text


async def _every_mode_refuses(vault: Vault, tenant: Tenant, grant: str, upstream: Upstream) -> None:
    forwarded = len(upstream.requests)
    for channel in CHANNELS:
        call = Call(vault, tenant.key, grant, f"{upstream.origin}/v1/a", reason=REASON)
        assert_unavailable(await channel.run(call), channel)
    assert_token_withheld(vault, tenant.key, grant, upstream)
    assert len(upstream.requests) == forwarded, "a request went upstream without its record"


async def _every_mode_works(vault: Vault, tenant: Tenant, grant: str, upstream: Upstream) -> None:
    for channel in CHANNELS:
        call = Call(vault, tenant.key, grant, f"{upstream.origin}/v1/a", reason="back")
        result = await channel.run(call)
        assert result.ok, (channel, result)
    assert upstream.last().headers["authorization"] == f"Bearer {TOKEN}"


@pytest.fixture
def capped(tmp_path: Path) -> Iterator[tuple[Vault, Engine, PageCap]]:
    caps: list[PageCap] = []

    def make(url: str) -> Engine:
        engine = create_engine(url)
        caps.append(PageCap(engine))
        return engine

    with run_vault_on(tmp_path / "data", make) as (vault, engine):
        yield vault, engine, caps[0]


async def test_a_full_sqlite_database_refuses_every_mode_then_recovers(
    capped: tuple[Vault, Engine, PageCap], upstream: Upstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    vault, engine, cap = capped
    monkeypatch.setenv("ALTER_BASE_URL", vault.base_url)
    tenant = Tenant.create(vault)
    grant = _store(tenant, upstream)
    assert _transparent(vault, tenant.key, grant).status_code == 200

    cap.fill(engine)
    for _ in range(500):
        answer = _transparent(vault, tenant.key, grant)
        if answer.status_code != 200:
            break
    else:
        raise AssertionError("the database never filled up")
    assert answer.status_code == 503, answer.text
    assert answer.json()["detail"]["error"] == "audit_unavailable"
    assert answer.headers["x-vaultgate-error"] == "audit_unavailable"
    await _every_mode_refuses(vault, tenant, grant, upstream)
    assert verify(vault)["ok"]  # what was stored is intact

    cap.free()
    await _every_mode_works(vault, tenant, grant, upstream)
    report = verify(vault)
    assert report["ok"], report


def _allow_connections(dbname: str, allowed: bool) -> None:
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'ALTER DATABASE "{dbname}" ALLOW_CONNECTIONS {str(allowed).lower()}')
        if allowed:
            return
        # pg_terminate_backend only signals: a session may still answer a query for a moment,
        # so the test waits until none of the database's sessions is left.
        deadline = time.monotonic() + 60
        while admin.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = %s",
            (dbname,),
        ).fetchone() != (0,):
            assert time.monotonic() < deadline, "sessions of the database never ended"
            time.sleep(0.05)


@pytest.mark.postgres
async def test_postgresql_made_unavailable_refuses_every_mode_then_recovers(
    pg_url: str, tmp_path: Path, upstream: Upstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    dbname = pg_url.rsplit("/", 1)[1]
    # The warm grant and key must stay cached through the whole outage (the calls below take
    # longer than the default 2 s lifetime on a busy machine), so that what is refused is the
    # audit write itself, not a read of something that expired meanwhile.
    ttl = {"VAULTGATE_CACHE_TTL": "600"}
    with run_vault_on(tmp_path / "data", database_url=pg_url, extra_env=ttl) as (vault, _):
        monkeypatch.setenv("ALTER_BASE_URL", vault.base_url)
        tenant = Tenant.create(vault)
        grant = _store(tenant, upstream)
        cold = _store(tenant, upstream)  # never used: nothing about it is cached
        assert _transparent(vault, tenant.key, grant).status_code == 200
        _allow_connections(dbname, False)
        try:
            answer = _transparent(vault, tenant.key, grant)
            assert answer.status_code == 503, answer.text
            # A grant the store cannot be asked about is unavailability too, never a 500.
            answer = _transparent(vault, tenant.key, cold)
            assert answer.status_code == 503, answer.text
            assert answer.json()["detail"]["error"] == "storage_unavailable"
            await _every_mode_refuses(vault, tenant, grant, upstream)
        finally:
            _allow_connections(dbname, True)
        await _every_mode_works(vault, tenant, grant, upstream)
        assert verify(vault)["ok"]


@pytest.mark.postgres
def test_unreadable_store_is_503_for_keys_and_management_too(
    pg_url: str, tmp_path: Path, upstream: Upstream
) -> None:
    dbname = pg_url.rsplit("/", 1)[1]
    with run_vault_on(tmp_path / "data", database_url=pg_url) as (vault, _):
        tenant = Tenant.create(vault)  # its key was never presented: nothing cached
        grant = _store(tenant, upstream)
        _allow_connections(dbname, False)
        try:
            statuses = [_transparent(vault, tenant.key, grant).status_code]
            with vault.admin() as admin:
                statuses.append(admin.get("/v1/audit").status_code)
        finally:
            _allow_connections(dbname, True)
    assert statuses == [503, 503]
    assert upstream.requests == []
