"""Each tab at laptop and phone width: screenshots for review, and the checks a reviewer would
make by eye: labelled fields, nothing wider than the screen, no script or style the CSP blocks."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.browser

CANARY = "sk-screens-canary-5e6f7a8b9c0d"
UNLABELLED = """() => [...document.querySelectorAll('input, select, textarea')]
  .filter(e => e.type !== 'hidden' && e.labels.length === 0 && !e.getAttribute('aria-label'))
  .map(e => e.name)"""
LAPTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
OVERFLOW = "() => document.documentElement.scrollWidth - window.innerWidth"


@pytest.fixture(scope="module")
def seeded(vault, upstream):
    app_id, _ = vault.make_app_key("screens <b>app</b>")
    with vault.admin() as admin:
        secret = admin.post(
            "/v1/secrets",
            json={
                "app_id": app_id,
                "name": "openai-screens",
                "provider": "openai",
                "credential": {"token": CANARY},
                "allowed_hosts": [upstream.origin],
            },
        ).json()
        admin.post(f"/v1/grants/{secret['grant_id']}/clone", json={"ttl_seconds": 3600})
    return {"app_id": app_id, "secret_id": secret["secret_id"], "grant_id": secret["grant_id"]}


def _tabs(seeded):
    return {
        "secrets": f"/portal/secrets?app_id={seeded['app_id']}",
        "secret": f"/portal/secrets/{seeded['secret_id']}",
        "grant": f"/portal/grants/{seeded['grant_id']}",
        "picker": "/portal/secrets/new",
        "new-openai": f"/portal/secrets/new/openai?app_id={seeded['app_id']}",
        "new-custom": f"/portal/secrets/new/custom?app_id={seeded['app_id']}",
        "apps": "/portal/apps",
        "app": f"/portal/apps/{seeded['app_id']}",
        "audit": "/portal/audit",
        "audit-verify": "/portal/audit/verify",
        "providers": "/portal/providers",
    }


@pytest.mark.parametrize(("size_name", "viewport"), [("laptop", LAPTOP), ("phone", PHONE)])
def test_every_tab_renders_cleanly(browser, vault, seeded, artifacts, size_name, viewport):
    context = browser.new_context(viewport=viewport)
    page = context.new_page()
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda exc: problems.append(str(exc)))
    try:
        page.goto(vault.base_url + "/portal/login")
        page.screenshot(path=str(artifacts / f"login-{size_name}.png"), full_page=True)
        page.get_by_label("Email").fill(vault.portal_user)
        page.get_by_label("Password").fill(vault.portal_password)
        page.get_by_role("button", name="Sign in").click()
        expect(page.get_by_role("heading", name="Managed secrets")).to_be_visible()
        for name, path in _tabs(seeded).items():
            answer = page.goto(vault.base_url + path)
            assert answer is not None and answer.status == 200, path
            page.screenshot(path=str(artifacts / f"{name}-{size_name}.png"), full_page=True)
            assert page.evaluate(UNLABELLED) == [], f"unlabelled fields on {path}"
            assert page.evaluate(OVERFLOW) <= 0, f"{path} is wider than a {size_name} screen"
            html = page.content()
            assert CANARY not in html
            assert "<b>app</b>" not in html
        assert problems == []  # a CSP violation or a script error shows up here
    finally:
        context.close()
