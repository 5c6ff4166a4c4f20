"""The portal in a real browser: the journey of a new user, from sign-in to a revoked clone.

Everything is done through the pages, the way a person would: the app key and the grant ids
are read off the screen (the grant id through the copy button and the clipboard).
"""

from __future__ import annotations

import httpx
import pytest
from playwright.sync_api import Page, expect

from vaultgate import SyncVault

pytestmark = pytest.mark.browser

CANARY = "sk-canary-0d9e8f7a6b5c4d3e2f1a"


class Pages:
    """A page that checks, after each step, that the canary never reached the browser."""

    def __init__(self, page: Page, base_url: str) -> None:
        self.page = page
        self.base = base_url
        self.seen: list[str] = []

    def go(self, path: str) -> None:
        self.page.goto(self.base + path)
        self.check()

    def check(self) -> None:
        self.page.wait_for_load_state()
        html = self.page.content()
        self.seen.append(self.page.url)
        assert CANARY not in html, f"the secret value reached {self.page.url}"


def _sign_in(page: Page, vault) -> None:
    page.goto(vault.base_url + "/portal")
    expect(page).to_have_url(f"{vault.base_url}/portal/login?next=/portal/secrets")
    page.get_by_label("Email").fill(vault.portal_user)
    page.get_by_label("Password").fill(vault.portal_password)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(f"{vault.base_url}/portal/secrets")
    expect(page.get_by_role("heading", name="Managed secrets")).to_be_visible()


def _copied(page: Page, button_name: str) -> str:
    page.get_by_role("button", name=button_name).first.click()
    expect(page.get_by_role("button", name=button_name).first).to_have_text("Copied")
    return str(page.evaluate("navigator.clipboard.readText()"))


def _create_app_and_key(ui: Pages) -> str:
    page = ui.page
    ui.go("/portal/apps")
    page.get_by_label("App name").fill("journey")
    page.get_by_role("button", name="Create the app").click()
    ui.check()
    page.get_by_label("Key name").fill("laptop")
    page.get_by_role("button", name="Create the key").click()
    ui.check()
    expect(page.get_by_text("it is shown this once")).to_be_visible()
    key = page.locator("#new-api-key").inner_text().strip()
    assert key.startswith("alter_key_")
    return key


def _add_openai_secret(ui: Pages, upstream_origin: str) -> str:
    page = ui.page
    ui.go("/portal/secrets")
    page.get_by_role("link", name="Add a secret").click()
    page.get_by_label("Search providers").fill("openai")
    expect(page.locator("#provider-list li:visible")).to_have_count(1)  # Custom hides too
    page.locator("#provider-list a", has_text="OpenAI").click()
    ui.check()
    page.get_by_label("Name").fill("openai-journey")
    token = page.get_by_label("Token")
    token.fill("pk-not-an-openai-key")
    expect(page.locator("#f-credential-token-check")).to_contain_text("does not look like")
    token.fill(CANARY)
    expect(page.locator("#f-credential-token-check")).to_contain_text("Looks like an OpenAI key")
    page.get_by_label("Allowed hosts").fill(upstream_origin)
    page.get_by_role("button", name="Store the secret").click()
    ui.check()
    expect(page.get_by_text("Stored. Put this grant_id")).to_be_visible()
    grant_id = _copied(page, "Copy the grant_id")
    assert grant_id == page.locator("#new-grant-id").inner_text().strip()
    return grant_id


def _clone(ui: Pages, grant_id: str) -> str:
    page = ui.page
    page.get_by_role("link", name=grant_id).click()
    ui.check()
    page.get_by_label("Clone name").fill("nightly")
    page.get_by_label("Time to live").fill("1h")
    page.get_by_role("button", name="Create the clone").click()
    ui.check()
    expect(page.get_by_text("Clone created")).to_be_visible()
    clone_id = _copied(page, "Copy the grant_id")
    assert clone_id != grant_id
    expect(page.get_by_text("no expiry")).to_have_count(0)  # the TTL gave it an expiry
    return clone_id


def _audit_rows(ui: Pages, grant_id: str, outcome: str = "") -> list[str]:
    page = ui.page
    ui.go("/portal/audit")
    page.get_by_label("Grant").fill(grant_id)
    if outcome:
        page.get_by_label("Outcome").select_option(outcome)
    page.get_by_role("button", name="Filter").click()
    ui.check()
    return [row.inner_text() for row in page.locator("table.audit tbody tr").all()]


def test_new_user_journey(browser, vault, upstream):
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=vault.base_url)
    page = context.new_page()
    page.on("dialog", lambda dialog: dialog.accept())
    ui = Pages(page, vault.base_url)
    try:
        _sign_in(page, vault)
        key = _create_app_and_key(ui)
        grant_id = _add_openai_secret(ui, upstream.origin)

        with SyncVault(api_key=key, base_url=vault.base_url) as sdk:
            answer = sdk.request(
                "GET",
                f"{upstream.origin}/v1/models",
                grant_id=grant_id,
                reason="journey: list models",
            )
        assert answer.status_code == 200
        assert upstream.last().headers["authorization"] == f"Bearer {CANARY}"

        clone_id = _clone(ui, grant_id)
        proxy = httpx.Client(
            base_url=vault.base_url, trust_env=False, headers={"Authorization": f"Bearer {key}"}
        )
        with proxy:
            assert proxy.get(f"/proxy/{clone_id}/v1/models").status_code == 200
            assert upstream.last().headers["authorization"] == f"Bearer {CANARY}"

            assert any("grant:use" in row for row in _audit_rows(ui, grant_id))
            assert any("grant:use" in row for row in _audit_rows(ui, clone_id))

            ui.go(f"/portal/grants/{clone_id}")
            page.get_by_role("button", name="Revoke this grant").click()
            ui.check()
            expect(page.locator("#grant-status")).to_have_text("revoked")

            denied = proxy.get(f"/proxy/{clone_id}/v1/models")
            assert denied.status_code == 403
            assert denied.json()["detail"]["error"] == "grant_revoked"
            assert proxy.get(f"/proxy/{grant_id}/v1/models").status_code == 200
        denials = _audit_rows(ui, clone_id, outcome="denied")
        assert any("grant:deny" in row and "grant_revoked" in row for row in denials)
        for path in ("/portal/secrets", "/portal/apps", "/portal/audit", "/portal/providers"):
            ui.go(path)
    finally:
        context.close()


def test_sign_in_by_keyboard_alone(browser, vault):
    context = browser.new_context()
    page = context.new_page()
    try:
        page.goto(vault.base_url + "/portal/login")
        email = page.get_by_label("Email")
        for _ in range(5):  # the skip link and the brand link come first
            page.keyboard.press("Tab")
            if email.evaluate("node => node === document.activeElement"):
                break
        expect(email).to_be_focused()
        page.keyboard.type(vault.portal_user)
        page.keyboard.press("Tab")
        expect(page.get_by_label("Password")).to_be_focused()
        page.keyboard.type(vault.portal_password)
        page.keyboard.press("Enter")
        expect(page.get_by_role("heading", name="Managed secrets")).to_be_visible()
    finally:
        context.close()


def test_confirm_dialog_can_cancel_a_revocation(browser, vault, upstream):
    app_id, _ = vault.make_app_key("cancel-revoke")
    with vault.admin() as admin:
        created = admin.post(
            "/v1/secrets",
            json={
                "app_id": app_id,
                "name": "keep-me",
                "provider": "openai",
                "credential": {"token": CANARY},
                "allowed_hosts": [upstream.origin],
            },
        ).json()
    context = browser.new_context()
    page = context.new_page()
    messages: list[str] = []

    def dismiss(dialog) -> None:
        messages.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", dismiss)
    try:
        _sign_in(page, vault)
        page.goto(f"{vault.base_url}/portal/grants/{created['grant_id']}")
        page.get_by_role("button", name="Revoke this grant").click()
        assert messages and "Revoke this grant" in messages[0]
        expect(page.locator("#grant-status")).to_have_text("active")
        assert CANARY not in page.content()
    finally:
        context.close()
