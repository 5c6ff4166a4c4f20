"""Held calls through the project's SDK (``AlterVault`` and ``SyncVault``), side by side with the
official client: ``proxy_request`` answers a ``PendingApproval``, ``get_approval_status`` and
``await_approval`` answer what the official client answers, and a denial, an expiry, a missing
approval and a local timeout raise the same typed errors.

Each test asks once per client on one vault (SQLite and PostgreSQL), against a real upstream
that must see nothing before an approval and exactly one request after each.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

import vaultgate
from support import Upstream, Vault
from support.approvals import SECRET, Held, decide
from support.twins import Client, error_shape, masked, plain, three

pytestmark = pytest.mark.usefixtures("official")
BODY = {"amount": 4200, "to": "acct-17"}
ASKED = ("approval_id", "approval_group_id", "expires_at", "expires_in", "approval_url")
DECIDED = (*ASKED, "decided_at", "executed_at", "duration_ms", "date")


async def ask(client: Client, held: Held, origin: str) -> Any:
    url = f"{origin}/v1/payments"
    pending = await client.call(
        "proxy_request", "POST", url, grant_id=held.grant_id, json=BODY, reason="pay 17"
    )
    assert type(pending).__name__ == "PendingApproval", (client.name, pending)
    return pending


async def test_an_approved_call_answers_the_same_in_all_three(
    vault: Vault, upstream: Upstream, hold_grant: Callable[..., Held]
) -> None:
    held = hold_grant(upstream, approvers=["alice@example.com"])
    async with three(held.tenant.key) as clients:
        pending = [await ask(c, held, upstream.origin) for c in clients]
        assert isinstance(pending[1], vaultgate.PendingApproval)
        assert isinstance(pending[2].gates[0], vaultgate.ApprovalGate)
        shapes = [masked(p, ASKED) for p in pending]
        assert shapes[1] == shapes[0] and shapes[2] == shapes[0]
        for p in pending[1:]:
            assert p.approval_url.endswith(f"/portal/approvals/{p.approval_group_id}")
        ids = [str(p.approval_id) for p in pending]
        before = [await c.call("get_approval_status", i) for c, i in zip(clients, ids, strict=True)]
        assert isinstance(before[1], vaultgate.ApprovalStatus) and not before[2].is_terminal
        shapes = [masked(s, DECIDED) for s in before]
        assert shapes[1] == shapes[0] and shapes[2] == shapes[0]
        assert upstream.requests == [], "a held call reached the upstream before approval"

        for approval_id in ids:
            assert decide(vault, approval_id, "alice@example.com").status_code == 200
        results = [
            await c.call("await_approval", i, timeout=60, poll_interval=0.1)
            for c, i in zip(clients, ids, strict=True)
        ]
        after = [
            await c.call("get_approval_status", i, wait=1)
            for c, i in zip(clients, ids, strict=True)
        ]
    assert isinstance(results[1], vaultgate.ApprovalResult)
    shapes = [masked(r, DECIDED) for r in results]
    assert shapes[1] == shapes[0] and shapes[2] == shapes[0]
    # The result names the approval group it executed (the official client's answer too).
    assert [str(r.approval_id) for r in results] == [str(p.approval_group_id) for p in pending]
    assert results[2].body_json() == {"ok": True, "path": "/v1/payments", "method": "POST"}
    assert results[1].body_bytes() == results[0].body_bytes()
    assert [s.status for s in after] == ["executed"] * 3 and all(s.has_result for s in after)
    shapes = [masked(s, DECIDED) for s in after]
    assert shapes[1] == shapes[0] and shapes[2] == shapes[0]
    assert len(upstream.requests) == 3, "each approved call must be sent exactly once"
    assert all(json.loads(r.body) == BODY for r in upstream.requests)
    for value in (*pending, *results, *after):
        assert SECRET not in repr(plain(value)) and held.tenant.key not in repr(value)


async def test_a_denied_call_raises_approval_denied_in_all_three(
    vault: Vault, upstream: Upstream, hold_grant: Callable[..., Held]
) -> None:
    held = hold_grant(upstream)
    async with three(held.tenant.key) as clients:
        ids = [str((await ask(c, held, upstream.origin)).approval_id) for c in clients]
        for approval_id in ids:
            answer = decide(vault, approval_id, "bob@example.com", "deny", "not today")
            assert answer.status_code == 200
        errors = [
            await c.catch("await_approval", i, timeout=60, poll_interval=0.1)
            for c, i in zip(clients, ids, strict=True)
        ]
    assert [type(e).__name__ for e in errors] == ["ApprovalDeniedError"] * 3
    assert isinstance(errors[1], vaultgate.ApprovalError)
    assert [str(e) for e in errors] == ["not today"] * 3
    assert [e.approval_id for e in errors] == ids  # type: ignore[attr-defined]
    assert upstream.requests == []


async def test_a_lapsed_window_raises_approval_expired_in_all_three(
    upstream: Upstream, hold_grant: Callable[..., Held]
) -> None:
    held = hold_grant(upstream, ttl_seconds=1)
    async with three(held.tenant.key) as clients:
        ids = [str((await ask(c, held, upstream.origin)).approval_id) for c in clients]
        for client, approval_id in zip(clients, ids, strict=True):
            status = await client.call("get_approval_status", approval_id)
            while status.status == "pending":  # each poll is held until the status changes
                status = await client.call("get_approval_status", approval_id, wait=10)
            assert status.status == "expired" and [g.status for g in status.gates] == ["expired"]
        errors = [
            await c.catch("await_approval", i, timeout=60, poll_interval=0.1)
            for c, i in zip(clients, ids, strict=True)
        ]
    assert [type(e).__name__ for e in errors] == ["ApprovalExpiredError"] * 3
    assert len({str(e) for e in errors}) == 1
    assert upstream.requests == []


async def test_missing_approvals_and_local_timeouts_fail_alike(
    upstream: Upstream, hold_grant: Callable[..., Held]
) -> None:
    held = hold_grant(upstream)
    missing = "00000000-0000-4000-8000-000000000000"
    async with three(held.tenant.key) as clients:
        pending = [await ask(c, held, upstream.origin) for c in clients]
        for verb, kwargs in (("get_approval_status", {}), ("await_approval", {"timeout": 5})):
            errors = [await c.catch(verb, missing, **kwargs) for c in clients]
            shapes = [error_shape(e) for e in errors]
            assert shapes[0] == {
                "class": "BackendError",
                "error": "approval_not_found",
                "fields": {},
            }
            assert shapes[1] == shapes[0] and shapes[2] == shapes[0], (verb, shapes)
        # A finite deadline already past: no poll at all, the typed timeout at once.
        late = [
            await c.catch("await_approval", str(p.approval_id), timeout=0)
            for c, p in zip(clients, pending, strict=True)
        ]
        assert [type(e).__name__ for e in late] == ["ApprovalTimeoutError"] * 3
        assert [e.approval_id for e in late[1:]] == [str(p.approval_id) for p in pending[1:]]  # type: ignore[attr-defined]
        # A short wait on a call nobody decides: the typed timeout, not a hang.
        short = [
            await c.catch("await_approval", str(p.approval_id), timeout=0.5, poll_interval=0.1)
            for c, p in zip(clients, pending, strict=True)
        ]
        assert [type(e).__name__ for e in short] == ["ApprovalTimeoutError"] * 3
        over = [await c.catch("get_approval_status", missing, wait=26) for c in clients]
        assert {error_shape(e)["class"] for e in over} == {"BackendError"}
        for client in clients:
            bad = await client.catch("await_approval", missing, poll_interval=0)
            assert type(bad).__name__ == "AlterValueError"
    assert upstream.requests == []
