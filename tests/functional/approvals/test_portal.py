"""The portal's Approvals tab, driven over HTTP like a browser: queue, detail, CSRF, decide."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

import alter_sdk
import httpx
import pytest
from alter_sdk import HttpMethod
from alter_sdk.models import PendingApproval

from support import Upstream, Vault
from support.approvals import Held

pytestmark = pytest.mark.usefixtures("official")
CSRF = re.compile(r'name="csrf" value="([^"]+)"')
PASSWORD = "a-long-password-1234"


def _browser(vault: Vault, email: str) -> httpx.Client:
    client = httpx.Client(base_url=vault.base_url, trust_env=False, timeout=30)
    page = client.get("/portal/login")
    token = CSRF.search(page.text)
    assert token
    signed = client.post(
        "/portal/login", data={"csrf": token[1], "email": email, "password": PASSWORD}
    )
    assert signed.status_code == 303, signed.text
    return client


@pytest.fixture
def bob(vault: Vault, approvers: tuple[str, ...]) -> Iterator[httpx.Client]:
    client = _browser(vault, "bob@example.com")
    try:
        yield client
    finally:
        client.close()


async def _ask(app: alter_sdk.App, held: Held, upstream: Upstream) -> PendingApproval:
    pending = await app.proxy_request(
        HttpMethod.POST,
        f"{upstream.origin}/v1/refunds",
        grant_id=held.grant_id,
        json={"refund": "order-<b>77</b>"},
        reason="customer asked",
    )
    assert isinstance(pending, PendingApproval)
    return pending


def _csrf(page: httpx.Response) -> str:
    token = CSRF.search(page.text)
    assert token, page.text
    return token[1]


async def test_an_approver_sees_the_call_and_approves_it_in_the_portal(
    vault: Vault, upstream: Upstream, hold_grant: Callable[..., Held], bob: httpx.Client
) -> None:
    held = hold_grant(upstream)
    async with alter_sdk.App(api_key=held.tenant.key, caller="agent-7") as app:
        pending = await _ask(app, held, upstream)
        group = str(pending.approval_group_id)
        queue = bob.get("/portal/approvals")
        assert queue.status_code == 200
        assert 'href="/portal/approvals"' in queue.text and "aria-current" in queue.text
        row = queue.text.split('<h2 id="waiting">')[1].split('<h2 id="decided">')[0]
        for shown in ("POST", "127.0.0.1", "/v1/refunds", "agent-7", "customer asked"):
            assert shown in row

        detail = bob.get(pending.approval_url.removeprefix(vault.base_url))
        assert detail.status_code == 200
        assert "order-&lt;b&gt;77&lt;/b&gt;" in detail.text, "the body preview is not escaped"
        refused = bob.post(f"/portal/approvals/{group}/approve", data={"comment": "no token"})
        assert refused.status_code == 403
        assert upstream.requests == [], "a form without its CSRF token sent the call"

        approved = bob.post(
            f"/portal/approvals/{group}/approve", data={"csrf": _csrf(detail), "comment": "ok"}
        )
        assert approved.status_code == 303
        result = await app.await_approval(str(pending.approval_id), timeout=60, poll_interval=0.2)
    assert result.status_code == 200 and len(upstream.requests) == 1
    history = bob.get("/portal/approvals").text.split('<h2 id="decided">')[1]
    assert "bob@example.com (approved)" in history and "executed" in history
    # Once executed, the held call is gone from the store; its page still shows what happened.
    after = bob.get(pending.approval_url.removeprefix(vault.base_url))
    assert after.status_code == 200, after.text
    assert "executed" in after.text and "<h2>The call</h2>" not in after.text
    assert "order-&lt;b&gt;77" not in after.text


async def test_the_requester_cannot_approve_in_the_portal_but_can_deny(
    vault: Vault, upstream: Upstream, hold_grant: Callable[..., Held], bob: httpx.Client
) -> None:
    held = hold_grant(upstream)
    async with alter_sdk.App(api_key=held.tenant.key, caller="bob@example.com") as app:
        pending = await _ask(app, held, upstream)
        group = str(pending.approval_group_id)
        detail = bob.get(f"/portal/approvals/{group}")
        own = bob.post(f"/portal/approvals/{group}/approve", data={"csrf": _csrf(detail)})
        assert own.status_code == 403 and "may not approve their own" in own.text
        denied = bob.post(
            f"/portal/approvals/{group}/deny",
            data={"csrf": _csrf(detail), "comment": "changed my mind"},
        )
        assert denied.status_code == 303
        status = await app.get_approval_status(str(pending.approval_id))
    assert status.status == "denied" and status.decision_reason == "changed my mind"
    assert upstream.requests == []
    after = bob.get(f"/portal/approvals/{group}")
    assert after.status_code == 200, after.text
    assert "changed my mind" in after.text and "<h2>The call</h2>" not in after.text


def test_the_approvals_tab_needs_a_session(vault: Vault) -> None:
    with httpx.Client(base_url=vault.base_url, trust_env=False) as anonymous:
        answer = anonymous.get("/portal/approvals")
    assert answer.status_code == 303 and "/portal/login" in answer.headers["location"]
