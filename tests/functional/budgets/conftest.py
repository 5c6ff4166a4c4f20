"""One vault and one LLM-shaped upstream per module; each test stores its own budgeted secret."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import psycopg
import pytest

from support import Vault, run_vault
from support.injection import Tenant
from support.llm import LlmUpstream, request_of, run_llm_upstream

CANARY = "canary-budget-sk-Hq7Wz3Lp9"
PG_ADMIN_URL = os.environ.get("VAULTGATE_TEST_PG", "postgresql://root@127.0.0.1:5432/postgres")


@pytest.fixture(scope="module")
def llm() -> Iterator[LlmUpstream]:
    with run_llm_upstream() as server:
        yield server


@pytest.fixture(scope="module")
def budget_vault(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Vault]:
    with run_vault(tmp_path_factory.mktemp("budgets") / "data") as server:
        yield server


@pytest.fixture(scope="module")
def tenant(budget_vault: Vault) -> Tenant:
    return Tenant.create(budget_vault)


def store(tenant: Tenant, llm: LlmUpstream, budget: dict[str, Any] | None) -> str:
    """A bearer secret for the LLM upstream with ``budget``; its grant id."""
    policy = {"budget": budget} if budget is not None else {}
    body = {"credential_type": "bearer", "credential": {"token": CANARY}, "policy": policy}
    return tenant.store(body, [llm.origin])


def clone(vault: Vault, grant_id: str, **body: Any) -> httpx.Response:
    with vault.admin() as admin:
        return admin.post(
            f"/v1/grants/{grant_id}/clone", json={"name": uuid.uuid4().hex[:8], **body}
        )


def usage(vault: Vault, grant_id: str) -> dict[str, Any]:
    with vault.admin() as admin:
        answer = admin.get(f"/v1/grants/{grant_id}/usage")
    assert answer.status_code == 200, answer.text
    result: dict[str, Any] = answer.json()
    return result


def transparent(
    base_url: str, key: str, grant_id: str, shape: str, stream: bool
) -> tuple[httpx.Response, bytes]:
    """One call through the transparent proxy, read to its end (chunk by chunk when streamed)."""
    path, body = request_of(shape, stream)
    url = f"{base_url}/proxy/{grant_id}{path}"
    headers = {"Authorization": f"Bearer {key}"}
    with (
        httpx.Client(trust_env=False, timeout=30) as client,
        client.stream("POST", url, json=body, headers=headers) as answer,
    ):
        content = b"".join(answer.iter_bytes())
    return answer, content


@pytest.fixture(scope="module")
def pg_module_url() -> Iterator[str]:
    """A PostgreSQL database of the module's own, dropped afterwards (fails in CI if absent)."""
    name = f"vg_budget_{uuid.uuid4().hex[:12]}"
    try:
        admin = psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL is required in CI: {exc}")
        pytest.skip(f"PostgreSQL not reachable: {exc}")
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{PG_ADMIN_URL.rsplit('/', 1)[0]}/{name}"
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
