"""Human approvals through the unmodified official client (``alter-sdk==0.29.0``).

Each test runs on SQLite and on PostgreSQL, against a real loopback upstream that records what
reached it: before the last approval nothing may, after it exactly one request.
"""

from __future__ import annotations

import json
from collections.abc import Callable

import alter_sdk
import pytest
from alter_sdk import HttpMethod
from alter_sdk.exceptions import (
    ApprovalDeniedError,
    ApprovalExecutionFailedError,
    ApprovalExpiredError,
    RestrictedGrantRequiresProxyError,
)
from alter_sdk.models import PendingApproval

from support import Upstream, Vault, run_upstream
from support.approvals import SECRET, Held, decide
from support.audit import verify

pytestmark = pytest.mark.usefixtures("official")
BODY = {"amount": 4200, "to": "acct-17"}


async def _ask(app: alter_sdk.App, held: Held, origin: str) -> PendingApproval:
    pending = await app.proxy_request(
        HttpMethod.POST,
        f"{origin}/v1/payments",
        grant_id=held.grant_id,
        json=BODY,
        reason="pay invoice 17",
    )
    assert isinstance(pending, PendingApproval), pending
    return pending


async def test_approved_call_is_sent_once_and_await_returns_the_providers_answer(
    vault: Vault, upstream: Upstream, hold_grant: Callable[..., Held]
) -> None:
    held = hold_grant(upstream, approvers=["alice@example.com"])
    async with alter_sdk.App(api_key=held.tenant.key) as app:
        pending = await _ask(app, held, upstream.origin)
        assert pending.approval_url.endswith(f"/portal/approvals/{pending.approval_group_id}")
        assert len(pending.gates) == 1 and 0 < pending.expires_in <= 3600
        status = await app.get_approval_status(str(pending.approval_id))
        assert (status.status, status.has_result) == ("pending", False)
        assert upstream.requests == [], "a held call reached the upstream before approval"

        answer = decide(vault, str(pending.approval_id), "alice@example.com")
        assert answer.status_code == 200, answer.text
        result = await app.await_approval(str(pending.approval_id), timeout=60, poll_interval=0.2)
        again = await app.await_approval(str(pending.approval_id), timeout=60, poll_interval=0.2)

    assert result.status_code == 200
    assert result.body_json() == {"ok": True, "path": "/v1/payments", "method": "POST"}
    assert again.body_b64 == result.body_b64
    assert len(upstream.requests) == 1, "the approved call was not sent exactly once"
    sent = upstream.last()
    assert json.loads(sent.body) == BODY
    assert sent.headers["authorization"] == f"Bearer {SECRET}"
    assert held.tenant.key not in repr(sent.raw_headers)


async def test_denied_call_raises_approval_denied_and_sends_nothing(
    vault: Vault, upstream: Upstream, hold_grant: Callable[..., Held]
) -> None:
    held = hold_grant(upstream)
    async with alter_sdk.App(api_key=held.tenant.key) as app:
        pending = await _ask(app, held, upstream.origin)
        answer = decide(vault, str(pending.approval_id), "bob@example.com", "deny", "not today")
        assert answer.status_code == 200 and answer.json()["status"] == "denied"
        with pytest.raises(ApprovalDeniedError, match="not today"):
            await app.await_approval(str(pending.approval_id), timeout=60, poll_interval=0.2)
    assert upstream.requests == []
    late = decide(vault, str(pending.approval_id), "alice@example.com")
    assert (late.status_code, late.json()["detail"]["error"]) == (409, "approval_not_pending")
    assert upstream.requests == []


async def test_a_lapsed_window_raises_approval_expired(
    vault: Vault, upstream: Upstream, hold_grant: Callable[..., Held]
) -> None:
    held = hold_grant(upstream, ttl_seconds=1)
    async with alter_sdk.App(api_key=held.tenant.key) as app:
        pending = await _ask(app, held, upstream.origin)
        status = await app.get_approval_status(str(pending.approval_id))
        while status.status == "pending":  # each poll is held open until the status changes
            status = await app.get_approval_status(str(pending.approval_id), wait=10)
        assert status.status == "expired"
        assert [g.status for g in status.gates] == ["expired"]
        with pytest.raises(ApprovalExpiredError):
            await app.await_approval(str(pending.approval_id), timeout=60, poll_interval=0.2)
    late = decide(vault, str(pending.approval_id), "alice@example.com")
    assert late.status_code == 409
    assert upstream.requests == []


async def test_an_upstream_failure_after_approval_raises_execution_failed(
    vault: Vault, hold_grant: Callable[..., Held]
) -> None:
    with run_upstream() as gone:
        origin = gone.origin
    held = hold_grant(origin)  # nothing listens there any more
    async with alter_sdk.App(api_key=held.tenant.key) as app:
        pending = await _ask(app, held, origin)
        assert decide(vault, str(pending.approval_id), "alice@example.com").status_code == 200
        with pytest.raises(ApprovalExecutionFailedError):
            await app.await_approval(str(pending.approval_id), timeout=60, poll_interval=0.2)
        status = await app.get_approval_status(str(pending.approval_id))
    assert status.status == "failed" and status.execution_error
    assert SECRET not in status.execution_error


async def test_retrieve_mode_is_refused_as_requires_proxy(
    upstream: Upstream, hold_grant: Callable[..., Held]
) -> None:
    held = hold_grant(upstream, methods=["DELETE"])
    async with alter_sdk.App(api_key=held.tenant.key) as app:
        with pytest.raises(RestrictedGrantRequiresProxyError):
            await app.request(HttpMethod.GET, f"{upstream.origin}/v1/x", grant_id=held.grant_id)
        # The allowed twin: a call the rule does not hold goes straight through in proxy mode.
        direct = await app.proxy_request(
            HttpMethod.GET, f"{upstream.origin}/v1/x", grant_id=held.grant_id
        )
    assert direct.status_code == 200 and direct.approval_id is None
    assert len(upstream.requests) == 1 and upstream.last().method == "GET"


async def test_the_approval_trail_is_linked_and_verifies(
    vault: Vault, upstream: Upstream, hold_grant: Callable[..., Held]
) -> None:
    held = hold_grant(upstream)
    async with alter_sdk.App(api_key=held.tenant.key) as app:
        pending = await _ask(app, held, upstream.origin)
        decide(vault, str(pending.approval_id), "carol@example.com", comment="fine by me")
        await app.await_approval(str(pending.approval_id), timeout=60, poll_interval=0.2)
    group = str(pending.approval_group_id)
    with vault.admin() as admin:
        events = admin.get("/v1/audit", params={"grant_id": held.grant_id}).json()["items"]
    linked = {e["event"]: e for e in events if (e.get("details") or {}).get("approval_id") == group}
    assert set(linked) >= {"approval:requested", "approval:decided", "approval:executed"}
    assert linked["approval:decided"]["portal_user"] == "carol@example.com"
    assert linked["approval:decided"]["details"]["comment"] == "fine by me"
    assert linked["approval:decided"]["details"]["gate"] == str(pending.gates[0].approval_id)
    assert linked["approval:executed"]["upstream_status"] == 200
    assert verify(vault)["ok"] is True
