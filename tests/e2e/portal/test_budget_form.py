"""A budget set in the grant's policy form, in Chromium: shown in the usage panel, enforced on
the next call, a refused amount explained on its field, and removed again."""

from __future__ import annotations

import httpx
import pytest
from playwright.sync_api import Page, expect

pytestmark = pytest.mark.browser

CANARY = "sk-canary-budget-form-4e5f6a7b8c9d"


def _sign_in(page: Page, vault) -> None:
    page.goto(vault.base_url + "/portal/login")
    page.get_by_label("Email").fill(vault.portal_user)
    page.get_by_label("Password").fill(vault.portal_password)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Managed secrets")).to_be_visible()


def _fill_budget(page: Page, kind: str, amount: str, per: str = "hour") -> None:
    page.get_by_label("Budget counts").select_option(kind)
    page.get_by_label("Amount", exact=True).fill(amount)
    page.get_by_label("per", exact=True).select_option(per)
    page.get_by_role("button", name="Save the policy").click()


def test_a_budget_set_in_the_form_shows_in_the_usage_panel_and_binds(browser, vault, upstream):
    app_id, key = vault.make_app_key("budget-form")
    with vault.admin() as admin:
        created = admin.post(
            "/v1/secrets",
            json={
                "app_id": app_id,
                "name": "budget-form",
                "credential_type": "bearer",
                "credential": {"token": CANARY},
                "allowed_hosts": [upstream.origin],
            },
        )
    assert created.status_code == 201, created.text
    grant_id = created.json()["grant_id"]
    context = browser.new_context()
    page = context.new_page()
    proxy = httpx.Client(
        base_url=vault.base_url, trust_env=False, headers={"Authorization": f"Bearer {key}"}
    )
    try:
        _sign_in(page, vault)
        page.goto(f"{vault.base_url}/portal/grants/{grant_id}")
        expect(page.locator("#usage")).to_have_count(0)

        # A fraction of a request is refused on the amount, and nothing is saved.
        _fill_budget(page, "requests", "1.5")
        expect(page).to_have_title("Error: Grant of budget-form · vaultgate")
        expect(page.locator("#error-summary")).to_be_focused()
        amount = page.get_by_label("Amount", exact=True)
        expect(amount).to_have_attribute("aria-invalid", "true")
        expect(page.locator("#f-policy-policy-budget-amount-error")).to_contain_text("integer")
        expect(amount).to_have_value("1.5")
        expect(page.locator("#usage")).to_have_count(0)

        _fill_budget(page, "requests", "1")
        expect(page.get_by_text("Policy saved.")).to_be_visible()
        usage = page.locator("#usage")
        expect(usage).to_contain_text("1 requests per hour")
        expect(usage.locator(".budget-remaining")).to_have_text("1")
        expect(page.get_by_label("Budget counts")).to_have_value("requests")  # prefilled

        assert proxy.get(f"/proxy/{grant_id}/v1/models").status_code == 200
        refused = proxy.get(f"/proxy/{grant_id}/v1/models")
        assert refused.status_code == 429, refused.text
        assert refused.json()["detail"]["error"] == "quota_exceeded"
        page.reload()
        expect(usage.locator(".budget-spent")).to_have_text("1")
        expect(usage.locator(".budget-remaining")).to_have_text("0")
        expect(usage).to_contain_text("further calls are refused")

        page.get_by_label("Budget counts").select_option("")
        page.get_by_role("button", name="Save the policy").click()
        expect(page.get_by_text("Policy saved.")).to_be_visible()
        expect(page.locator("#usage")).to_have_count(0)
        assert proxy.get(f"/proxy/{grant_id}/v1/models").status_code == 200
        assert CANARY not in page.content()
    finally:
        proxy.close()
        context.close()
