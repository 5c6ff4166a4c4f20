"""Several outcome reports in one signed request (``/sdk/oauth/audit/api-calls``) against the
running vault, on SQLite and PostgreSQL: each report its own event, the batch all or nothing,
a replayed batch refused whole, and ``AlterVault`` using it under concurrency."""

from __future__ import annotations

import asyncio
import json
import secrets
import time
import uuid
from typing import Any

import httpx
import pytest

from support import Upstream
from support.audit import events
from support.injection import Tenant
from vaultgate import AlterVault
from vaultgate._protocol import BATCH_PATH
from vaultgate.injection.signing import sign_request

CANARY = "canary-batch-Qx81"


def _grant(tenant: Tenant, origin: Upstream) -> str:
    return tenant.store(
        {"credential_type": "bearer", "credential": {"token": CANARY}}, [origin.origin]
    )


def _signed(tenant: Tenant, payload: Any, key: str | None = None) -> tuple[bytes, dict[str, str]]:
    key = key or tenant.key
    body = json.dumps(payload).encode()
    headers = sign_request(
        key, "POST", BATCH_PATH, body, now=int(time.time()), nonce=secrets.token_hex(16)
    )
    return body, headers | {"x-api-key": key, "content-type": "application/json"}


def _send(tenant: Tenant, body: bytes, headers: dict[str, str]) -> httpx.Response:
    url = tenant.vault.base_url + BATCH_PATH
    return httpx.post(url, content=body, headers=headers, trust_env=False)


def _post(tenant: Tenant, payload: Any) -> httpx.Response:
    return _send(tenant, *_signed(tenant, payload))


def _report(grant: str, n: int, status: int = 200) -> dict[str, Any]:
    return {
        "grant_id": grant,
        "method": "GET",
        "url": f"https://api.example.com/r/{n}",
        "response_status": status,
        "latency_ms": n,
        "reason": f"batch {n}",
    }


def test_a_batch_records_each_report_as_its_own_event(tenant: Tenant, origin: Upstream) -> None:
    grant = _grant(tenant, origin)
    answer = _post(tenant, {"reports": [_report(grant, 1), _report(grant, 2, status=503)]})
    assert answer.status_code == 202, answer.text
    assert answer.json() == {"ok": True, "recorded": 2}
    outcomes = events(tenant.vault, grant_id=grant, event="grant:outcome")
    got = [(o["url"], o["upstream_status"], o["outcome"], o["reason"]) for o in outcomes]
    assert got == [
        ("https://api.example.com/r/1", 200, "ok", "batch 1"),
        ("https://api.example.com/r/2", 503, "error", "batch 2"),
    ]
    assert all(o["mode"] == "retrieve" and o["details"]["reported_by"] == "sdk" for o in outcomes)


@pytest.mark.parametrize(
    ("bad", "status", "code"),
    [
        ("unknown_grant", 404, "grant_not_found"),
        ("not_an_object", 400, "invalid_json"),
        ("no_grant_id", 422, "validation_error"),
    ],
)
def test_a_batch_with_one_report_at_fault_records_none_and_names_it(
    tenant: Tenant, origin: Upstream, bad: str, status: int, code: str
) -> None:
    grant = _grant(tenant, origin)
    faulty: Any = {
        "unknown_grant": _report(str(uuid.uuid4()), 2),
        "not_an_object": ["grant_id", grant],
        "no_grant_id": {"response_status": 200},
    }[bad]
    answer = _post(tenant, {"reports": [_report(grant, 1), faulty, _report(grant, 3)]})
    assert answer.status_code == status, answer.text
    detail = answer.json()["detail"]
    assert detail["error"] == code
    assert detail["message"].startswith("reports[1]")
    assert detail["field"].startswith("reports[1]")
    assert events(tenant.vault, grant_id=grant, event="grant:outcome") == []


def test_a_batch_may_not_name_another_apps_grant(
    tenant: Tenant, origin: Upstream, surface_vault: Any
) -> None:
    other = Tenant.create(surface_vault, f"other-{uuid.uuid4().hex[:8]}")
    theirs = _grant(other, origin)
    answer = _post(tenant, {"reports": [_report(theirs, 1)]})
    assert answer.status_code == 404
    assert answer.json()["detail"]["error"] == "grant_not_found"
    assert events(surface_vault, grant_id=theirs, event="grant:outcome") == []


@pytest.mark.parametrize(
    "payload",
    [{}, {"reports": []}, {"reports": {"grant_id": "x"}}, {"reports": [{}] * 101}],
    ids=["missing", "empty", "not_a_list", "too_many"],
)
def test_a_malformed_batch_is_refused_by_name(tenant: Tenant, payload: Any) -> None:
    answer = _post(tenant, payload)
    assert answer.status_code == 422, answer.text
    assert answer.json()["detail"]["field"] == "reports"


@pytest.mark.parametrize("scopes", [["tokens:retrieve"], ["tokens:retrieve", "audit:emit"]])
def test_a_batch_needs_the_audit_emit_scope(
    tenant: Tenant, origin: Upstream, scopes: list[str]
) -> None:
    """A key limited to fetching tokens may not write outcome records, batched or not."""
    grant = _grant(tenant, origin)
    with tenant.vault.admin() as admin:
        made = admin.post(
            f"/v1/apps/{tenant.app_id}/keys", json={"name": "limited", "scopes": scopes}
        )
    assert made.status_code == 201, made.text
    key = made.json()["api_key"]
    answer = _send(tenant, *_signed(tenant, {"reports": [_report(grant, 1)]}, key))
    recorded = events(tenant.vault, grant_id=grant, event="grant:outcome")
    if "audit:emit" in scopes:
        assert answer.status_code == 202, answer.text
        assert len(recorded) == 1
    else:
        assert answer.status_code == 403
        assert answer.json()["detail"]["error"] == "insufficient_scope"
        assert recorded == []


def test_a_replayed_batch_is_refused_whole_and_recorded_once(
    tenant: Tenant, origin: Upstream
) -> None:
    grant = _grant(tenant, origin)
    body, headers = _signed(tenant, {"reports": [_report(grant, 1), _report(grant, 2)]})
    first, again = _send(tenant, body, headers), _send(tenant, body, headers)
    assert first.status_code == 202
    assert again.status_code == 401
    assert again.json()["detail"]["error"] == "replayed_request"
    outcomes = events(tenant.vault, grant_id=grant, event="grant:outcome")
    assert sorted(o["url"] for o in outcomes if o["outcome"] != "denied") == [
        "https://api.example.com/r/1",
        "https://api.example.com/r/2",
    ]


class _Counting(httpx.AsyncBaseTransport):
    """The default transport, counting the report requests by path."""

    def __init__(self) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.paths: dict[str, int] = {}

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.paths[request.url.path] = self.paths.get(request.url.path, 0) + 1
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


async def test_alter_vault_batches_the_reports_of_concurrent_calls(
    tenant: Tenant, origin: Upstream
) -> None:
    grant = _grant(tenant, origin)
    transport = _Counting()
    calls = 32 * 5
    async with AlterVault(
        api_key=tenant.key, base_url=tenant.vault.base_url, transport=transport
    ) as vault:

        async def five(worker: int) -> None:
            for n in range(5):
                await vault.request("GET", f"{origin.origin}/c/{worker}/{n}", grant_id=grant)

        await asyncio.gather(*(five(w) for w in range(32)))
    assert (vault.pending_reports, vault.failed_reports, vault.dropped_reports) == (0, 0, 0)
    outcomes = events(tenant.vault, grant_id=grant, event="grant:outcome")
    assert sorted(o["url"] for o in outcomes) == sorted(
        f"{origin.origin}/c/{w}/{n}" for w in range(32) for n in range(5)
    )
    assert transport.paths.get(BATCH_PATH, 0) >= 1
    # Fewer report requests than reports: the ones that queued shared a request.
    assert (
        transport.paths.get(BATCH_PATH, 0) + transport.paths.get("/sdk/oauth/audit/api-call", 0)
        < calls
    )
    assert CANARY not in json.dumps(outcomes)
