"""Security headers on every portal answer, the audit and provider tabs, template hygiene."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from vaultgate.server.portal.guard import CSP
from vaultgate.server.portal.pages import TEMPLATES

HEADERS = {
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cache-control": "no-store",
}


@pytest.mark.parametrize("path", ["/portal/login", "/portal/secrets", "/portal/nope"])
def test_security_headers_on_pages_and_redirects(portal, path):
    answer = portal.client.get(path)
    for name, value in HEADERS.items():
        assert answer.headers.get(name) == value, name
    csp = answer.headers["content-security-policy"]
    assert csp == CSP
    assert "'unsafe-inline'" not in csp and "'unsafe-eval'" not in csp
    assert "frame-ancestors 'none'" in csp


def test_static_assets_are_served_with_the_same_headers(portal):
    answer = portal.client.get("/portal/static/portal.js")
    assert answer.status_code == 200
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert answer.headers["cache-control"] == "no-cache"


def test_headers_stay_off_the_api(portal):
    assert "content-security-policy" not in portal.client.get("/healthz").headers


def test_templates_carry_no_inline_script_or_style():
    for template in Path(TEMPLATES).glob("*.html"):
        text = template.read_text()
        assert not re.search(r"<script(?![^>]*\bsrc=)", text), template.name
        assert "<style" not in text and " style=" not in text, template.name
        assert not re.search(r"\son[a-z]+=", text), template.name  # no onclick= handlers
        assert "|safe" not in text.replace(" ", ""), template.name


def _use_events(portal):
    from vaultgate.server.audit.events import AuditEvent

    for outcome, event in (("allowed", "grant:use"), ("denied", "grant:deny")):
        portal.rt.audit.record_sync(
            AuditEvent.new(
                event=event,
                outcome=outcome,
                now=portal.clock.now,
                caller="agent-7",
                reason="<img src=x onerror=alert(1)>",
                grant_id="11111111-1111-4111-8111-111111111111",
            )
        )


def test_audit_tab_filters_and_escapes(signed_in):
    _use_events(signed_in)
    page = signed_in.client.get("/portal/audit?outcome=denied")
    assert page.status_code == 200
    rows = page.text.split("<tbody>")[1]
    assert "grant:deny" in rows and "grant:use" not in rows
    assert "<img src=x" not in page.text and "&lt;img src=x" in page.text
    everything = signed_in.client.get("/portal/audit").text.split("<tbody>")[1]
    assert "grant:use" in everything and "portal:login" in everything


def test_audit_tab_explains_a_bad_filter(signed_in):
    page = signed_in.client.get("/portal/audit?since=yesterday")
    assert page.status_code == 422
    assert 'id="f-since-error"' in page.text


def test_audit_event_detail_and_verification(signed_in):
    _use_events(signed_in)
    first = signed_in.client.get("/portal/audit/events/1")
    assert first.status_code == 200 and "key:create" in first.text
    assert signed_in.client.get("/portal/audit/events/999").status_code == 404
    verify = signed_in.client.get("/portal/audit/verify")
    assert "Intact" in verify.text


def test_audit_export_follows_the_filter(signed_in):
    _use_events(signed_in)
    answer = signed_in.client.get("/portal/audit/export?caller=agent-7&outcome=allowed")
    assert answer.status_code == 200
    assert "attachment" in answer.headers["content-disposition"]
    rows = [json.loads(line) for line in answer.text.splitlines()]
    assert [(r["event"], r["caller"]) for r in rows] == [("grant:use", "agent-7")]
    bad = signed_in.client.get("/portal/audit/export?outcome=maybe")
    assert bad.status_code == 422 and bad.headers["content-type"].startswith("text/html")


def test_providers_tab_searches(signed_in):
    page = signed_in.client.get("/portal/providers?q=anthropic")
    assert "api.anthropic.com" in page.text
    assert "x-api-key" in page.text.lower()
    assert "api.openai.com" not in page.text


@pytest.mark.parametrize("path", ["/portal/nope", "/portal/secrets/x/y/z"])
def test_an_unknown_portal_address_is_the_portals_own_page_not_json(signed_in, path):
    answer = signed_in.client.get(path)
    assert answer.status_code == 404
    assert answer.headers["content-type"].startswith("text/html")
    assert "<h1>Page not found</h1>" in answer.text
    assert 'href="/portal/secrets"' in answer.text  # a way back


def test_an_unknown_api_address_stays_a_json_404(signed_in):
    answer = signed_in.client.get("/v1/nope")
    assert answer.status_code == 404
    assert answer.json()["detail"]["error"] == "not_found"


def test_the_keys_page_makes_a_limited_key_and_shows_its_limits(signed_in):
    app_id = signed_in.make_app("limited")
    page = f"/portal/apps/{app_id}"
    data = {
        "name": "<b>ci</b>",
        "scopes": "grants:read, proxy:execute",
        "cidr_allowlist": "10.0.0.0/8",
        "rate_limit_rpm": "5",
    }
    answer = signed_in.post(f"{page}/keys", data, csrf_from=page)
    assert answer.status_code == 200, answer.text
    assert "<b>ci</b>" not in answer.text and "&lt;b&gt;ci&lt;/b&gt;" in answer.text
    (key,) = signed_in.rt.keys.list_keys(app_id)
    controls = signed_in.rt.key_controls._controls(key["id"])
    assert controls is not None and controls.rate_limit_rpm == 5
    assert controls.scopes == {"grants:read", "proxy:execute"}
    shown = signed_in.client.get(page).text
    assert "scopes: grants:read, proxy:execute" in shown
    assert "from: 10.0.0.0/8" in shown and "5 requests/min" in shown


@pytest.mark.parametrize(
    ("field", "value"),
    [("scopes", "grants:everything"), ("cidr_allowlist", "nowhere"), ("rate_limit_rpm", "x")],
)
def test_the_keys_page_refuses_bad_limits_next_to_the_field(signed_in, field, value):
    app_id = signed_in.make_app("limited")
    page = f"/portal/apps/{app_id}"
    answer = signed_in.post(f"{page}/keys", {"name": "ci", field: value}, csrf_from=page)
    assert answer.status_code == 422
    assert re.search(
        rf'<p class="error" id="[^"]*{field.replace("_", ".")}[^"]*-error">', answer.text
    )
    assert signed_in.rt.keys.list_keys(app_id) == []


def test_the_keys_form_needs_its_csrf_token(signed_in):
    app_id = signed_in.make_app("limited")
    data = {"name": "ci", "scopes": "grants:read"}
    answer = signed_in.client.post(f"/portal/apps/{app_id}/keys", data=data)
    assert answer.status_code == 403
    assert signed_in.rt.keys.list_keys(app_id) == []
