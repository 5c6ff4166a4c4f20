"""N of N gates: distinct people, never the one who asked, and one send however they race."""

from __future__ import annotations

import threading
from collections.abc import Callable

import alter_sdk
import httpx
import pytest
from alter_sdk import HttpMethod
from alter_sdk.models import PendingApproval

from support import Upstream, Vault
from support.approvals import Held, decide

pytestmark = pytest.mark.usefixtures("official")


async def _ask(app: alter_sdk.App, held: Held, upstream: Upstream) -> str:
    pending = await app.proxy_request(
        HttpMethod.DELETE, f"{upstream.origin}/v1/users/9", grant_id=held.grant_id
    )
    assert isinstance(pending, PendingApproval)
    return str(pending.approval_id)


def _error(answer: httpx.Response) -> tuple[int, str]:
    return answer.status_code, str(answer.json()["detail"]["error"])


async def test_two_of_two_needs_two_distinct_approvers_and_never_the_requester(
    vault: Vault, upstream: Upstream, hold_grant: Callable[..., Held]
) -> None:
    held = hold_grant(
        upstream,
        approvers=["alice@example.com", "bob@example.com", "carol@example.com"],
        approvals=2,
    )
    async with alter_sdk.App(api_key=held.tenant.key, caller="alice@example.com") as app:
        pending = await app.proxy_request(
            HttpMethod.DELETE, f"{upstream.origin}/v1/users/9", grant_id=held.grant_id
        )
        assert isinstance(pending, PendingApproval) and len(pending.gates) == 2
        approval_id = str(pending.approval_id)

        own = decide(vault, approval_id, "Alice@Example.com")
        assert _error(own) == (403, "approver_is_requester")
        first = decide(vault, approval_id, "bob@example.com")
        assert first.status_code == 200 and first.json()["status"] == "pending"
        assert first.json()["approvals_given"] == 1
        twice = decide(vault, approval_id, "bob@example.com")
        assert _error(twice) == (403, "approver_already_counted")
        stranger = decide(vault, approval_id, "admin@vaultgate.local")
        assert stranger.status_code in (403, 422)
        assert upstream.requests == [], "sent after one of two approvals"

        second = decide(vault, approval_id, "carol@example.com")
        assert second.status_code == 200, second.text
        result = await app.await_approval(approval_id, timeout=60, poll_interval=0.2)
        status = await app.get_approval_status(approval_id)
    assert result.status_code == 200
    assert [g.status for g in status.gates] == ["approved", "approved"]
    assert len(upstream.requests) == 1 and upstream.last().method == "DELETE"


async def test_only_listed_approvers_may_decide(
    vault: Vault, upstream: Upstream, hold_grant: Callable[..., Held]
) -> None:
    held = hold_grant(upstream, approvers=["bob@example.com"])
    async with alter_sdk.App(api_key=held.tenant.key) as app:
        approval_id = await _ask(app, held, upstream)
        assert _error(decide(vault, approval_id, "carol@example.com")) == (
            403,
            "approver_not_allowed",
        )
        assert _error(decide(vault, approval_id, "nobody@example.com")) == (
            422,
            "approver_unknown",
        )
        assert _error(decide(vault, approval_id, "carol@example.com", "deny")) == (
            403,
            "approver_not_allowed",
        )
        assert upstream.requests == []
        assert decide(vault, approval_id, "bob@example.com").status_code == 200
        await app.await_approval(approval_id, timeout=60, poll_interval=0.2)
    assert len(upstream.requests) == 1


async def test_a_named_group_decides(
    vault: Vault, upstream: Upstream, hold_grant: Callable[..., Held]
) -> None:
    with vault.admin() as admin:
        put = admin.put("/v1/approver-groups/payments", json={"members": ["Carol@example.com"]})
        assert put.status_code == 200 and put.json()["members"] == ["carol@example.com"]
        assert admin.get("/v1/approver-groups").json()["items"] == [put.json()]
    held = hold_grant(upstream, group="payments")
    async with alter_sdk.App(api_key=held.tenant.key) as app:
        approval_id = await _ask(app, held, upstream)
        assert _error(decide(vault, approval_id, "bob@example.com"))[1] == "approver_not_allowed"
        assert decide(vault, approval_id, "carol@example.com").status_code == 200
        await app.await_approval(approval_id, timeout=60, poll_interval=0.2)
    assert len(upstream.requests) == 1


async def test_concurrent_approvals_send_the_call_once(
    vault: Vault, upstream: Upstream, hold_grant: Callable[..., Held]
) -> None:
    held = hold_grant(upstream)  # any portal user, one approval
    async with alter_sdk.App(api_key=held.tenant.key) as app:
        approval_id = await _ask(app, held, upstream)
        people = ["alice@example.com", "bob@example.com", "carol@example.com"] * 3
        start = threading.Barrier(len(people))
        answers: list[int] = []

        def approve(person: str) -> None:
            start.wait()
            answers.append(decide(vault, approval_id, person).status_code)

        threads = [threading.Thread(target=approve, args=(p,)) for p in people]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        result = await app.await_approval(approval_id, timeout=60, poll_interval=0.2)
        again = await app.await_approval(approval_id, timeout=60, poll_interval=0.2)
    assert sorted(answers) == [200] + [409] * (len(people) - 1), answers
    assert result.status_code == again.status_code == 200
    assert len(upstream.requests) == 1, "concurrent approvals sent the call more than once"
