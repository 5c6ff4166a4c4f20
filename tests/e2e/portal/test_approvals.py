"""The approval journey in a real browser: a held call appears, a person approves it, and the
client that was waiting gets the provider's answer."""

from __future__ import annotations

import asyncio
import os
import threading
from typing import Any

import alter_sdk
import pytest
from alter_sdk import HttpMethod
from alter_sdk.models import PendingApproval
from playwright.sync_api import expect

from support import Upstream, Vault
from support.injection import Tenant

pytestmark = pytest.mark.browser
SECRET = "sk-canary-approval-e2e-5Rt0"


def _ask(key: str, grant_id: str, origin: str) -> PendingApproval:
    async def call() -> PendingApproval:
        async with alter_sdk.App(api_key=key, caller="billing-agent") as app:
            pending = await app.proxy_request(
                HttpMethod.POST,
                f"{origin}/v1/refunds",
                grant_id=grant_id,
                json={"order": "A-1001", "amount": 12},
                reason="refund a duplicate charge",
            )
        assert isinstance(pending, PendingApproval)
        return pending

    # Playwright's sync API runs an event loop on this thread: the client gets its own.
    out: dict[str, PendingApproval] = {}
    thread = threading.Thread(target=lambda: out.setdefault("pending", asyncio.run(call())))
    thread.start()
    thread.join(timeout=60)
    return out["pending"]


def _await_in_background(key: str, approval_id: str, out: dict[str, Any]) -> threading.Thread:
    async def wait() -> None:
        async with alter_sdk.App(api_key=key) as app:
            out["result"] = await app.await_approval(approval_id, timeout=90, poll_interval=0.5)

    thread = threading.Thread(target=lambda: asyncio.run(wait()), daemon=True)
    thread.start()
    return thread


def test_a_held_call_is_approved_in_the_portal_and_the_waiting_client_gets_its_answer(
    browser: Any, vault: Vault, upstream: Upstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ALTER_BASE_URL", vault.base_url)
    assert os.environ["ALTER_BASE_URL"] == vault.base_url
    upstream.requests.clear()
    tenant = Tenant.create(vault, "approvals-e2e")
    grant = tenant.store(
        {
            "credential_type": "bearer",
            "credential": {"token": SECRET},
            "policy": {"requires_approval": {"methods": ["POST"]}},
        },
        [upstream.origin],
    )
    pending = _ask(tenant.key, grant, upstream.origin)
    out: dict[str, Any] = {}
    waiter = _await_in_background(tenant.key, str(pending.approval_id), out)

    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    try:
        page.goto(pending.approval_url)  # the deep link: sign in first, then the call itself
        page.get_by_label("Email").fill(vault.portal_user)
        page.get_by_label("Password").fill(vault.portal_password)
        page.get_by_role("button", name="Sign in").click()
        expect(page).to_have_url(pending.approval_url)
        expect(page.locator("#approval-status")).to_have_text("pending")
        nav = page.get_by_role("navigation", name="Portal sections")
        nav.get_by_role("link", name="Approvals").click()
        row = page.get_by_role("row").filter(has_text="/v1/refunds")
        expect(row).to_contain_text("billing-agent")
        expect(row).to_contain_text("refund a duplicate charge")
        row.get_by_role("link").click()
        expect(page.locator("#approval-status")).to_have_text("pending")
        expect(page.locator("#body-preview")).to_contain_text('"order":"A-1001"')
        assert SECRET not in page.content()
        assert upstream.requests == [], "the call went out before anyone approved it"

        page.get_by_label("Comment").fill("duplicate confirmed")
        page.get_by_role("button", name="Approve and send").click()
        expect(page.locator("#main").get_by_role("status")).to_contain_text("Approved")
        waiter.join(timeout=90)
        assert "result" in out, "the waiting client never got its answer"
        assert out["result"].status_code == 200
        assert out["result"].body_json()["path"] == "/v1/refunds"
        assert len(upstream.requests) == 1

        page.goto(vault.base_url + "/portal/approvals")
        decided = page.locator("table[aria-labelledby=decided]")
        expect(decided).to_contain_text(f"{vault.portal_user} (approved)")
        expect(decided).to_contain_text("executed")
        assert SECRET not in page.content()
    finally:
        context.close()
