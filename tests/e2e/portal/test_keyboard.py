"""The portal by keyboard and by ear: a keyboard-only journey from sign-in to a stored secret,
focus on the error summary after a refused form, a visible focus ring (3:1) on every control,
results announced in live regions; and the phone-width fixes (390 px) a newcomer asked for.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, BrowserContext, Locator, Page, expect

from vaultgate.server.providers import load_catalogue

pytestmark = pytest.mark.browser

PHONE = {"width": 390, "height": 844}
CANARY = "sk-keyboard-canary-1a2b3c4d5e6f"
LONG_APP = "payments-reconciliation-service-for-the-european-subsidiaries-eu-west"

# The focused element's ring against what is behind it (the first opaque background above it,
# since the ring is drawn outside the element): WCAG's contrast ratio.
RING = """() => {
  const el = document.activeElement;
  const cs = getComputedStyle(el);
  const rgb = c => (c.match(/[\\d.]+/g) || []).map(Number);
  const lum = c => {
    const [r, g, b] = rgb(c).slice(0, 3).map(v => v / 255)
      .map(v => v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4);
    return 0.2126 * r + 0.7152 * g + 0.0722 * b;
  };
  let node = el.parentElement, bg = 'rgb(255, 255, 255)';
  while (node) {
    const c = getComputedStyle(node).backgroundColor;
    const parts = rgb(c);
    if (parts.length === 3 || (parts.length === 4 && parts[3] > 0)) { bg = c; break; }
    node = node.parentElement;
  }
  const width = parseFloat(cs.outlineWidth) || 0;
  const [hi, lo] = [lum(cs.outlineColor), lum(bg)].sort((a, b) => b - a);
  const what = el.tagName.toLowerCase() + (el.id ? '#' + el.id : '') +
    (el.textContent ? ' ' + el.textContent.trim().slice(0, 30) : '');
  return {what, width: cs.outlineStyle === 'none' ? 0 : width,
          ratio: (hi + 0.05) / (lo + 0.05), color: cs.outlineColor, bg};
}"""
FOCUSABLE = "a[href], button, input:not([type=hidden]), select, textarea, summary"


@pytest.fixture(scope="module")
def app_id(vault) -> str:
    app_id, _ = vault.make_app_key("keyboard")
    return app_id


def _context(browser: Browser, **options: object) -> BrowserContext:
    return browser.new_context(**options)  # type: ignore[arg-type]


@pytest.fixture
def page(browser, vault) -> Iterator[Page]:
    context = _context(browser, viewport={"width": 1280, "height": 900})
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=vault.base_url)
    page = context.new_page()
    page.on("dialog", lambda dialog: dialog.accept())
    try:
        yield page
    finally:
        context.close()


def _ring_problem(page: Page) -> str | None:
    ring = page.evaluate(RING)
    if ring["width"] < 2 or ring["ratio"] < 3:
        return f"{ring['what']}: ring {ring['width']}px {ring['color']} on {ring['bg']}"
    return None


def _tab_to(page: Page, target: Locator, rings: list[str], limit: int = 80) -> None:
    """Tab (only) until ``target`` has focus, checking the ring of everything passed on the way."""
    for _ in range(limit):
        if target.evaluate("node => node === document.activeElement"):
            return
        page.keyboard.press("Tab")
        problem = _ring_problem(page)
        if problem:
            rings.append(problem)
    raise AssertionError(f"{target} cannot be reached with Tab")


def _sign_in_by_keyboard(page: Page, vault, rings: list[str]) -> None:
    page.goto(vault.base_url + "/portal/login")
    _tab_to(page, page.get_by_label("Email"), rings)
    page.keyboard.type(vault.portal_user)
    page.keyboard.press("Tab")
    page.keyboard.type(vault.portal_password)
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Managed secrets")).to_be_visible()


def test_keyboard_only_from_sign_in_to_a_stored_secret(page, vault, upstream, app_id):
    rings: list[str] = []
    _sign_in_by_keyboard(page, vault, rings)
    page.goto(f"{vault.base_url}/portal/secrets?app_id={app_id}")
    _tab_to(page, page.get_by_role("link", name="Add a secret"), rings)
    page.keyboard.press("Enter")
    search = page.get_by_label("Search providers")
    _tab_to(page, search, rings)
    page.keyboard.type("openai")
    _tab_to(page, page.locator("#provider-list a", has_text="OpenAI"), rings)
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Add an OpenAI secret")).to_be_visible()

    # Sent without the key: refused, and the summary has focus; its link leads to the field.
    _tab_to(page, page.get_by_role("button", name="Store the secret"), rings)
    page.keyboard.press("Enter")
    summary = page.locator("#error-summary")
    expect(summary).to_be_focused()
    expect(page).to_have_title("Error: Add a secret · vaultgate")
    page.keyboard.press("Tab")
    expect(summary.get_by_role("link", name="token: required")).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.get_by_label("Token")).to_be_focused()
    page.keyboard.type(CANARY)
    _tab_to(page, page.get_by_label("Allowed hosts"), rings)
    page.keyboard.type(upstream.origin)
    _tab_to(page, page.get_by_role("button", name="Store the secret"), rings)
    page.keyboard.press("Enter")
    expect(page.get_by_text("Stored. Put this grant_id")).to_be_visible()
    expect(page.get_by_role("status").filter(has_text="Stored.")).to_be_visible()
    assert CANARY not in page.content()
    assert rings == []


@pytest.mark.parametrize(
    "path",
    [
        "/portal/secrets",
        "/portal/apps",
        "/portal/audit",
        "/portal/providers",
        "/portal/secrets/new",
        "/portal/secrets/new/custom",
        "/portal/audit/events/999999",
    ],
)
def test_every_control_shows_a_focus_ring_of_3_to_1(page, vault, path):
    rings: list[str] = []
    _sign_in_by_keyboard(page, vault, rings)
    page.goto(vault.base_url + path)
    page.keyboard.press("Tab")  # keyboard use: from now on focus() shows the ring as Tab does
    for control in page.locator(FOCUSABLE).all():
        if control.is_visible():
            control.focus()
            problem = _ring_problem(page)
            if problem:
                rings.append(problem)
    assert rings == []


def test_a_refused_form_focuses_its_summary(page, vault):
    _sign_in_by_keyboard(page, vault, [])
    page.goto(vault.base_url + "/portal/apps")
    page.get_by_role("button", name="Create the app").click()  # empty: it was a 500
    expect(page).to_have_title("Error: Apps and API keys · vaultgate")
    summary = page.locator("#error-summary")
    expect(summary).to_be_focused()
    expect(summary).to_have_attribute("role", "alert")
    link = summary.get_by_role("link")
    expect(link).to_have_attribute("href", "#f-name")
    link.click()
    expect(page.get_by_label("App name")).to_be_focused()
    expect(page.get_by_label("App name")).to_have_attribute("aria-invalid", "true")


def test_results_are_announced(page, vault, app_id):
    _sign_in_by_keyboard(page, vault, [])
    page.goto(vault.base_url + "/portal/providers")
    count = page.locator("#providers-count")
    expect(count).to_have_attribute("aria-live", "polite")
    page.get_by_label("Search").fill("openai")
    expect(count).to_have_text("1 match")
    page.goto(f"{vault.base_url}/portal/secrets/new?app_id={app_id}")
    page.get_by_label("Search providers").fill("open")
    expect(page.locator("#provider-count")).to_have_text("1 match")
    page.get_by_label("Search providers").fill("")
    expect(page.locator("#provider-count")).to_have_text(
        f"{len(load_catalogue().all()) + 1} matches"
    )

    page.goto(f"{vault.base_url}/portal/apps/{app_id}")
    page.get_by_role("button", name="Copy the app id").click()
    expect(page.locator("#announcer")).to_have_text("Copied")
    expect(page.locator("#announcer")).to_have_attribute("aria-live", "polite")


@pytest.fixture
def phone(browser, vault) -> Iterator[Page]:
    context = _context(browser, viewport=PHONE)
    page = context.new_page()
    try:
        _sign_in_by_keyboard(page, vault, [])
        yield page
    finally:
        context.close()


def test_at_390_px_a_long_app_name_does_not_widen_the_secrets_page(phone, vault):
    vault.make_app_key(LONG_APP)
    phone.goto(vault.base_url + "/portal/secrets")
    expect(phone.get_by_label("App")).to_contain_text(LONG_APP)
    assert phone.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]


def test_at_390_px_an_audit_time_is_one_line(phone, vault):
    phone.goto(vault.base_url + "/portal/audit")
    cells = phone.locator("td.when")
    expect(cells.first).to_be_visible()
    lines = cells.first.evaluate(
        """td => { const r = document.createRange(); r.selectNodeContents(td);
                   return new Set([...r.getClientRects()].map(x => Math.round(x.top))).size; }"""
    )
    assert lines == 1


def test_at_390_px_a_provider_takes_the_article_it_is_said_with(phone, vault):
    for slug, heading in [
        ("openai", "Add an OpenAI secret"),
        ("aws", "Add an AWS secret"),
        ("github", "Add a GitHub secret"),
        ("xai", "Add an xAI secret"),
    ]:
        phone.goto(f"{vault.base_url}/portal/secrets/new/{slug}")
        expect(phone.get_by_role("heading", level=1)).to_have_text(heading)
    phone.get_by_label("Token").fill("not-an-xai-key")
    expect(phone.locator("#f-credential-token-check")).to_have_text(
        "This does not look like an xAI key; check it before saving."
    )


def test_at_390_px_a_refused_clone_says_why_at_the_top(phone, vault, app_id, upstream):
    with vault.admin() as admin:
        secret = admin.post(
            "/v1/secrets",
            json={
                "app_id": app_id,
                "name": "clone-me",
                "provider": "openai",
                "credential": {"token": CANARY},
                "allowed_hosts": [upstream.origin],
            },
        ).json()
    phone.goto(f"{vault.base_url}/portal/grants/{secret['grant_id']}")
    phone.get_by_label("Time to live").fill("forever")
    phone.get_by_role("button", name="Create the clone").click()
    summary = phone.locator("main > #error-summary")
    expect(summary).to_be_focused()
    expect(summary).to_contain_text("ttl_seconds")
    assert summary.evaluate("s => s.getBoundingClientRect().top") < PHONE["height"]
    summary.get_by_role("link").click()
    expect(phone.get_by_label("Time to live")).to_be_focused()
    assert phone.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
