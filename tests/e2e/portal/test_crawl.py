"""Every page and every form of the portal, found by a crawler in Chromium.

Pages: axe-core (pinned in ``axe/package-lock.json``) finds no critical or serious violation,
and each page has a language, a title, one h1 and a main landmark; error pages too.
Forms: each is sent empty (in the browser), with a wrong value in each field, with a stale CSRF
token and with an expired session. None may answer a 5xx; a refusal is a 4xx page whose title
starts with "Error:" and whose error summary (where focus lands) links to the field it names.
A field that can hold no wrong value (a search box, a checkbox) is listed in FREE, so a new
field nobody thought about fails here until someone does.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import find, settings
from hypothesis import strategies as st
from playwright.sync_api import APIRequestContext, BrowserContext, Page, expect

from e2e.portal.crawling import Answer, Crawl, Field, Form, crawl, facts, serious
from vaultgate.server.crypto import PORTAL_SESSION, Barrier
from vaultgate.server.keys_at_rest import load_keyring
from vaultgate.server.portal.sessions import ABSOLUTE_TIMEOUT, COOKIE, PortalSession, SessionCodec
from vaultgate.server.settings import load_settings

pytestmark = [pytest.mark.browser, pytest.mark.timeout(900)]

LONG = "x" * 5_000  # past the length limit of every text field (names 200, formats 4096)
HUGE = "x" * 70_000  # past a credential's 64 KiB, under the form cap of 512 KiB
WRONG: dict[str, str | list[str]] = {
    "ttl_seconds": "forever",
    "expires_at": "next tuesday",
    "policy.not_before": "soon",
    "policy.expires_at": "soon",
    "policy.schedule.timezone": "Mars/Olympus_Mons",
    "policy.schedule.windows": "whenever",
    "policy.ip_allow": "not-a-cidr",
    "policy.ip_deny": "not-a-cidr",
    "policy.rate_limit.requests": "-1",
    "policy.rate_limit.per_seconds": "-1",
    "policy.allowed_methods": ["BREW"],
    "allowed_hosts": "not a host!",
    "since": "yesterday",
    "until": "yesterday",
    "aws.region": "Not A Region!",
    "aws.service": "Not A Service!",
}
# Fields where every value is a valid answer: a filter or search matching nothing, a checkbox.
FREE = {"q", "grant_id", "caller", "policy.require_reason", "policy.proxy_only"}
# Fields that only mean something together: the wrong one is sent with valid partners.
PARTNERS = {
    "policy.rate_limit.requests": "10",
    "policy.rate_limit.per_seconds": "60",
    "policy.schedule.timezone": "Europe/Paris",
    "policy.schedule.windows": "mon-fri 09:00-17:00",
    "policy.budget.kind": "tokens",
    "policy.budget.amount": "1000",
    "policy.budget.per": "day",
    "policy.budget.alert_at_percent": "80",
}
RULE_PARTS = {"target": "header", "name": "X-Crawl", "value": "{token}"}


@pytest.fixture(scope="module")
def seeded(vault, upstream) -> dict[str, str]:
    app_id, _ = vault.make_app_key("crawl-app")
    with vault.admin() as admin:

        def add(body: dict[str, Any]) -> dict[str, Any]:
            answer = admin.post("/v1/secrets", json={"app_id": app_id, **body})
            assert answer.status_code == 201, answer.text
            return dict(answer.json())

        openai = add(
            {"name": "crawl-openai", "provider": "openai", "credential": {"token": "sk-crawl"}}
        )
        add(
            {
                "name": "crawl-custom",
                "credential_type": "bearer",
                "credential": {"token": "crawl-token"},
                "allowed_hosts": [upstream.origin],
            }
        )
        clone = admin.post(f"/v1/grants/{openai['grant_id']}/clone", json={"ttl_seconds": 600})
        assert admin.delete(f"/v1/grants/{clone.json()['grant_id']}").status_code == 204
    return {"app_id": app_id, "grant_id": openai["grant_id"]}


@pytest.fixture(scope="module")
def session(browser, vault, seeded) -> Iterator[tuple[Page, str]]:
    """One signed-in page for the whole module, and a CSRF token that went stale at sign-in."""
    context: BrowserContext = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.on("dialog", lambda dialog: dialog.accept())
    page.goto(vault.base_url + "/portal/login")
    stale = page.locator("input[name=csrf]").first.get_attribute("value") or ""
    page.get_by_label("Email").fill(vault.portal_user)
    page.get_by_label("Password").fill(vault.portal_password)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Managed secrets")).to_be_visible()
    try:
        yield page, stale
    finally:
        context.close()


@pytest.fixture(scope="module")
def crawled(session, vault, axe_source, artifacts) -> Crawl:
    page, _ = session
    found = crawl(page, vault.base_url, "/portal/secrets", axe_source)
    forms = found.unique_forms()
    lines = [f"{len(found.pages)} pages, {len(forms)} kinds of form", *found.pages]
    lines += [
        f"{f.method.upper()} {f.action}: {' '.join(x.name for x in f.editable)}" for f in forms
    ]
    (artifacts / "crawl.txt").write_text("\n".join(lines) + "\n")
    return found


def test_every_page_passes_axe_and_has_its_landmarks(crawled):
    shapes = set(crawled.pages.values())
    assert len([s for s in shapes if s.startswith("/portal/secrets/new/")]) > 60  # every provider
    for must in ("/portal/audit", "/portal/apps/{id}", "/portal/grants/{id}", "/portal/providers"):
        assert must in shapes, f"the crawler never reached {must}"
    assert crawled.problems == []


def test_sign_in_page_passes_axe_empty_and_refused(browser, vault, axe_source):
    context = browser.new_context()
    page = context.new_page()
    try:
        page.goto(vault.base_url + "/portal/login")
        assert serious(page, axe_source) + facts(page) == []
        page.get_by_role("button", name="Sign in").click()
        expect(page).to_have_title("Error: Sign in · vaultgate")
        expect(page.locator("#error-summary")).to_be_focused()
        expect(page.locator("#error-summary")).to_contain_text("enter the email address")
        assert serious(page, axe_source) + facts(page) == []
        page.get_by_label("Email").fill("nobody@example.com")
        page.get_by_label("Password").fill("not-the-password")
        page.get_by_role("button", name="Sign in").click()
        expect(page.locator("#error-summary")).to_contain_text("Wrong email or password.")
        expect(page.locator("#error-summary")).to_be_focused()
    finally:
        context.close()


def _editable(form: Form) -> bool:
    return not form.confirm and bool(form.editable)


def _empty(page: Page, form: Form) -> None:
    page.locator("form").nth(form.index).evaluate(
        """form => {
          for (const e of form.elements) {
            if (e.type === 'hidden' || e.type === 'submit' || e.type === 'button') continue;
            if (e.type === 'checkbox' || e.type === 'radio') e.checked = false;
            else if (e.tagName === 'SELECT') {
              if ([...e.options].some(o => o.value === '')) e.value = '';
            } else e.value = '';
          }
        }"""
    )


def test_every_form_sent_empty_is_refused_with_the_message_or_accepted(
    session, vault, crawled, axe_source
):
    page, _ = session
    problems: list[str] = []
    forms = [f for f in crawled.unique_forms() if _editable(f)]
    assert len(forms) > 20  # every provider's kind of form, and the rest
    checked: set[str] = set()  # one refused page of each template goes through axe
    for form in forms:
        page.goto(vault.base_url + form.page)
        _empty(page, form)
        with page.expect_navigation() as navigation:
            page.locator("form").nth(form.index).evaluate("form => form.requestSubmit()")
        answer = navigation.value
        status = answer.status if answer else 0
        where = f"{form.method.upper()} {form.action} (from {form.page}) sent empty"
        if status >= 500 or status == 0:
            problems.append(f"{where}: answered {status}")
        elif status >= 400:
            if not page.title().startswith("Error:"):
                problems.append(f"{where}: title {page.title()!r}")
            if not page.evaluate("() => document.activeElement?.id === 'error-summary'"):
                problems.append(f"{where}: focus is not on the error summary")
            template = _key(form, Field("name", "", "", "", False, False, [], "", ""))[0]
            if template not in checked:
                checked.add(template)
                problems += [f"{where}: {p}" for p in serious(page, axe_source) + facts(page)]
        elif form.method == "post" and page.locator("main [role=status]").count() == 0:
            problems.append(f"{where}: accepted, but nothing says so")
    assert problems == []


def _valid_base(form: Form, wrong: Field) -> dict[str, str | list[str]]:
    """Values that make the rest of the form acceptable, so the wrong field is the problem."""
    values: dict[str, str | list[str]] = {}
    kinds = wrong.types.split() or ["bearer"]
    for f in form.editable:
        if f.name == "credential_type":
            values[f.name] = kinds[0]
        elif f.pattern:
            values[f.name] = _matching(f.pattern)
        elif f.name.startswith("credential.") or (f.required and not f.value):
            values[f.name] = "crawl-valid-name" if f.name == "name" else "crawl-value-0123456789"
            if f.name == "allowed_hosts":
                values[f.name] = "api.example.com"
    if wrong.name in PARTNERS:
        values.update({k: v for k, v in PARTNERS.items() if k[:13] == wrong.name[:13]})
    if wrong.name.startswith("injection.additional["):
        row = wrong.name.rpartition(".")[0]
        values.update({f"{row}.{part}": v for part, v in RULE_PARTS.items()})
    return values


@functools.cache
def _matching(pattern: str) -> str:
    """The simplest key of a provider's format (``sk-`` and so on)."""
    strategy = st.from_regex(pattern).filter(lambda s: "\n" not in s and s.strip() == s)
    return str(find(strategy, lambda _: True, settings=settings(database=None, deadline=None)))


def _wrong(f: Field) -> str | list[str] | None:
    if f.name in FREE:
        return None
    if f.name in WRONG:
        return WRONG[f.name]
    if f.tag == "select":
        return "not-an-option"
    if f.type == "number":
        return "-1"
    if f.name.startswith("credential."):
        return HUGE
    if f.type in ("text", "password", "email", "search", "textarea", "datetime-local"):
        return LONG
    raise AssertionError(f"{f.name} ({f.type}): no wrong value known; add one, or list it in FREE")


def _key(form: Form, f: Field) -> tuple[str, str]:
    """Provider forms share their app, name and hosts fields: one of them is enough for those,
    while each provider's own fields (its credential, its parameters) are tried on each."""
    shared = not f.name.startswith(("credential.", "provider_params."))
    provider = form.action.startswith("/portal/secrets/new/") and form.action[20:] != "custom"
    return ("a provider's form" if provider and shared else f"{form.method} {form.action}", f.name)


def _flagged(answer: Answer, name: str) -> bool:
    tail = "".join(c if c.isalnum() else "-" for c in name)
    return name in answer.invalid or any(i.endswith(tail) for i in answer.invalid)


def _post(client: APIRequestContext, base: str, form: Form, data: str) -> Answer:
    """The form sent as the browser would, through the browser context's cookies."""
    send = client.post if form.method == "post" else client.get
    url = base + form.action
    if form.method == "post":
        kwargs: dict[str, Any] = {
            "data": data,
            "headers": {"content-type": "application/x-www-form-urlencoded"},
        }
    else:
        url, kwargs = f"{url}?{data}", {}
    return Answer(send(url, max_redirects=0, **kwargs))


def test_every_field_with_a_wrong_value_is_refused_and_named(session, vault, crawled, artifacts):
    page, _ = session
    problems: list[str] = []
    tried: set[tuple[str, str]] = set()
    for form in [f for f in crawled.unique_forms() if _editable(f)]:
        for f in form.editable:
            wrong = _wrong(f)
            if wrong is None or _key(form, f) in tried:
                continue
            tried.add(_key(form, f))
            data = form.data({**_valid_base(form, f), f.name: wrong})
            answer = _post(page.request, vault.base_url, form, data)
            where = f"{form.method.upper()} {form.action} with a wrong {f.name}"
            if answer.status >= 500:
                problems.append(f"{where}: answered {answer.status}")
            elif form.method == "get" and answer.status < 400:
                continue  # a filter that matches nothing is an answer
            else:
                problems += [f"{where}: {p}" for p in answer.refusal_problems()]
                if not _flagged(answer, f.name):
                    problems.append(f"{where}: the field is not marked")
    assert len(tried) > 100
    (artifacts / "crawl-wrong-values.txt").write_text(f"{len(tried)} wrong values sent\n")
    assert problems == []


def _expired_cookie(vault) -> str:
    """A real session cookie, signed with the vault's key, that has outlived its 12 hours."""
    key = Barrier(load_keyring(load_settings(vault.env))).derive_key(PORTAL_SESSION)
    then = time.time() - ABSOLUTE_TIMEOUT - 60
    session = PortalSession(nonce="expired", user=vault.portal_user, started=then, seen=then)
    return SessionCodec(key).dump(session)


def test_every_form_with_a_stale_token_or_an_expired_session_is_refused(
    browser, session, vault, crawled
):
    page, stale = session
    expired = browser.new_context()
    cookie = {"name": COOKIE, "value": _expired_cookie(vault), "url": vault.base_url + "/portal"}
    expired.add_cookies([cookie])  # type: ignore[list-item]
    problems: list[str] = []
    forms = [f for f in crawled.unique_forms() if f.method == "post"]
    try:
        for form in forms:
            where = f"POST {form.action} (from {form.page})"
            answer = _post(page.request, vault.base_url, form, form.data({"csrf": stale}))
            problems += [f"{where} with a stale token: {p}" for p in answer.refusal_problems()]
            late = _post(expired.request, vault.base_url, form, form.data())
            problems += [f"{where} with an expired session: {p}" for p in late.refusal_problems()]
            if form.action != "/portal/logout" and "session expired" not in late.text:
                problems.append(f"{where} with an expired session: does not say so")
    finally:
        expired.close()
    assert problems == []


def test_the_checker_sees_a_serious_violation(browser, axe_source):
    """The crawl's verdict means something only if axe runs: a page with low-contrast text and an
    unlabelled field must fail it."""
    context = browser.new_context()
    page = context.new_page()
    try:
        page.set_content(
            '<html><body><main><p style="color:#aaa;background:#fff">faint</p>'
            "<input type=text></main></body></html>"
        )
        found = serious(page, axe_source)
        assert any("color-contrast" in line for line in found), found
        assert any("label" in line for line in found), found
        assert sorted(facts(page)) == ["0 h1 elements", "no lang on <html>", "no title"]
    finally:
        context.close()
