"""``X-Alter-Context`` (tool, run id, thread id, parent, metadata) is stored with the use event,
filterable in ``GET /v1/audit`` and the CLI, escaped, bounded, and covered by ``verify``."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from typing import Any

import alter_sdk
import httpx
import pytest
import sqlalchemy as sa
from alter_sdk import HttpMethod

from support import Upstream, Vault
from support.database import engine_of
from support.injection import Tenant
from vaultgate.injection.signing import sign_request
from vaultgate.server.storage.tables import audit_events

TOKEN = "canary-context-Hw28"


def audit(vault: Vault, **params: Any) -> list[dict[str, Any]]:
    with vault.admin() as admin:
        answer = admin.get("/v1/audit", params={"limit": 500, **params})
    assert answer.status_code == 200, answer.text
    return list(answer.json()["items"])


def wait_for(
    read: Callable[[], list[dict[str, Any]]], count: int, timeout: float = 20
) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    found = read()
    while len(found) < count and time.monotonic() < deadline:
        time.sleep(0.05)
        found = read()
    return found


def store(tenant: Tenant, origin: Upstream) -> str:
    return tenant.store(
        {"credential_type": "bearer", "credential": {"token": TOKEN}}, [origin.origin]
    )


async def test_the_context_is_stored_with_the_use_event_and_filters_the_trail(
    tenant: Tenant, origin: Upstream
) -> None:
    grant = store(tenant, origin)
    run = f"run-{uuid.uuid4().hex[:8]}"
    context = {
        "tool": "search_issues",
        "run_id": run,
        "thread_id": "thread-7",
        "parent_agent": "planner",
        "ticket": "OPS-12",
    }
    url = f"{origin.origin}/v1/r"
    async with alter_sdk.App(api_key=tenant.key) as app:
        await app.request(HttpMethod.GET, url, grant_id=grant, context=context)
        await app.proxy_request(HttpMethod.GET, url, grant_id=grant, context=context)
        await app.proxy_request(HttpMethod.GET, url, grant_id=grant, context={"run_id": "other"})
        await app.proxy_request(HttpMethod.GET, url, grant_id=grant)
    uses = audit(tenant.vault, run_id=run, event="grant:use")
    assert sorted(u["mode"] for u in uses) == ["proxy", "retrieve"]
    assert all(u["details"]["context"] == context for u in uses)
    # Outcomes are written off the request path: wait for them, not for a fixed time.
    outcomes = wait_for(lambda: audit(tenant.vault, run_id=run, event="grant:outcome"), 2)
    # The retrieve-mode one is the client's own report, sent with the same context.
    assert sorted(o["mode"] for o in outcomes) == ["proxy", "retrieve"]
    assert len(audit(tenant.vault, thread_id="thread-7", tool="search_issues")) >= 2
    assert audit(tenant.vault, run_id=run, tool="another_tool") == []
    unlabelled = audit(tenant.vault, grant_id=grant, event="grant:use")
    assert len(unlabelled) == 4
    assert sum(1 for u in unlabelled if (u["details"] or {}).get("context") is None) == 1


def signed_token(tenant: Tenant, grant: str, url: str, context: str) -> httpx.Response:
    body = json.dumps(
        {"grant_id": grant, "request": {"method": "GET", "url": url}}, separators=(",", ":")
    ).encode()
    headers = sign_request(
        tenant.key,
        "POST",
        "/sdk/token",
        body,
        context=context,
        now=int(time.time()),
        nonce=secrets.token_hex(16),
    )
    headers.update({"x-api-key": tenant.key, "content-type": "application/json"})
    return httpx.post(
        f"{tenant.vault.base_url}/sdk/token", content=body, headers=headers, trust_env=False
    )


def test_control_characters_in_a_context_are_stored_escaped(
    tenant: Tenant, origin: Upstream
) -> None:
    grant = store(tenant, origin)
    run = f"run-{uuid.uuid4().hex[:8]}"
    raw = json.dumps({"run_id": run, "tool": "evil\u001b[31m\nline"}, separators=(",", ":"))
    assert signed_token(tenant, grant, f"{origin.origin}/v1/r", raw).status_code == 200
    (use,) = audit(tenant.vault, run_id=run, event="grant:use")
    stored = use["details"]["context"]["tool"]
    assert "\u001b" not in stored and "\n" not in stored
    assert stored.startswith("evil")


@pytest.mark.parametrize(
    "raw",
    [
        "not json",
        "[1,2]",
        json.dumps({"run_id": 7}),
        json.dumps({f"k{i}": "v" for i in range(21)}),
        json.dumps({"k" * 65: "v"}),
        json.dumps({"tool": "v" * 513}),
    ],
    ids=["not-json", "not-object", "not-string", "too-many-keys", "long-key", "long-value"],
)
def test_a_malformed_or_oversized_context_is_refused_before_any_use(
    tenant: Tenant, origin: Upstream, raw: str
) -> None:
    grant = store(tenant, origin)
    answer = signed_token(tenant, grant, f"{origin.origin}/v1/r", raw)
    assert answer.status_code == 400, answer.text
    assert answer.json()["detail"]["error"] == "invalid_context"
    assert TOKEN not in answer.text
    assert audit(tenant.vault, grant_id=grant, event="grant:use") == []


def test_the_cli_filters_the_trail_by_context(tenant: Tenant, origin: Upstream) -> None:
    grant = store(tenant, origin)
    run = f"run-{uuid.uuid4().hex[:8]}"
    raw = json.dumps({"run_id": run, "thread_id": "t-cli"}, separators=(",", ":"))
    assert signed_token(tenant, grant, f"{origin.origin}/v1/r", raw).status_code == 200
    env = {
        **os.environ,
        "VAULTGATE_URL": tenant.vault.base_url,
        "VAULTGATE_ADMIN_KEY": tenant.vault.admin_key,
    }
    listed = subprocess.run(
        [sys.executable, "-m", "vaultgate.cli", "audit", "list", "--run-id", run, "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=True,
    )
    (event,) = json.loads(listed.stdout)
    assert (event["grant_id"], event["details"]["context"]["thread_id"]) == (grant, "t-cli")


async def test_verify_covers_the_stored_context(
    vault: Vault, upstream: Upstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ALTER_BASE_URL", vault.base_url)
    tenant = Tenant.create(vault)
    grant = store(tenant, upstream)
    async with alter_sdk.App(api_key=tenant.key) as app:
        await app.proxy_request(
            HttpMethod.GET, f"{upstream.origin}/v1/r", grant_id=grant, context={"run_id": "r1"}
        )
    with vault.admin() as admin:
        assert admin.get("/v1/audit/verify").json()["ok"] is True
    (use,) = audit(vault, run_id="r1", event="grant:use")
    with engine_of(vault) as engine, engine.begin() as conn:
        conn.execute(
            sa.update(audit_events)
            .where(audit_events.c.seq == use["seq"])
            .values(details={"context": {"run_id": "r2"}})
        )
    with vault.admin() as admin:
        report = admin.get("/v1/audit/verify").json()
    assert (report["ok"], report["first_bad_seq"]) == (False, use["seq"])
