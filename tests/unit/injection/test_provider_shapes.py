"""Every provider of reference/providers.md (62) can be expressed by the rule shapes.

Each row is written from the reference's "how the credential is sent" column; the test checks
the rules validate, inject what the API expects, and (except for a key in the path) survive the
Alter wire form.
"""

from __future__ import annotations

import base64

import httpx
import pytest

from vaultgate.injection.credential import Credential
from vaultgate.injection.rules import (
    AdditionalRule,
    InjectionRules,
    apply_path,
    apply_rules,
    validate_rules,
)
from vaultgate.injection.wire import to_wire

H, Q = "header", "query"
B = ("Authorization", "Bearer {token}")
BASIC = ("Authorization", "Basic {basic}")
# name, credential type, (header, format) or None, additional rules
PROVIDERS: list[tuple[str, str, tuple[str, str] | None, tuple[tuple[str, str, str], ...]]] = [
    ("OpenAI", "bearer", B, ()),
    ("Anthropic", "api_key", ("x-api-key", "{token}"), ((H, "anthropic-version", "2023-06-01"),)),
    ("Datadog", "api_key", ("DD-API-KEY", "{token}"), ((H, "DD-APPLICATION-KEY", "{app_key}"),)),
    ("Stripe", "basic", BASIC, ()),
    ("Twilio", "basic", BASIC, ()),
    ("SendGrid", "bearer", B, ()),
    (
        "GitHub",
        "bearer",
        B,
        ((H, "X-GitHub-Api-Version", "2022-11-28"), (H, "Accept", "application/vnd.github+json")),
    ),
    ("Airtable", "bearer", B, ()),
    ("Notion", "bearer", B, ((H, "Notion-Version", "2022-06-28"),)),
    ("Linear", "api_key", ("Authorization", "{token}"), ()),
    ("Mailchimp", "basic", BASIC, ()),
    ("Shopify", "api_key", ("X-Shopify-Access-Token", "{token}"), ()),
    ("PagerDuty", "api_key", ("Authorization", "Token token={token}"), ()),
    ("Postmark", "api_key", ("X-Postmark-Server-Token", "{token}"), ()),
    ("Mailgun", "basic", BASIC, ()),
    ("Zendesk", "basic", BASIC, ()),
    ("Jira", "basic", BASIC, ()),
    ("Freshdesk", "basic", BASIC, ()),
    ("BambooHR", "basic", BASIC, ()),
    ("Chargebee", "basic", BASIC, ()),
    ("Greenhouse", "basic", BASIC, ()),
    ("Lob", "basic", BASIC, ()),
    ("EasyPost", "basic", BASIC, ()),
    ("Mixpanel", "basic", BASIC, ()),
    ("Mailjet", "basic", BASIC, ()),
    (
        "Algolia",
        "api_key",
        ("X-Algolia-API-Key", "{token}"),
        ((H, "X-Algolia-Application-Id", "APP42"),),
    ),
    ("Supabase", "api_key", B, ((H, "apikey", "{token}"),)),
    (
        "RapidAPI",
        "api_key",
        ("X-RapidAPI-Key", "{token}"),
        ((H, "X-RapidAPI-Host", "x.p.rapidapi.com"),),
    ),
    (
        "Klaviyo",
        "api_key",
        ("Authorization", "Klaviyo-API-Key {token}"),
        ((H, "revision", "2024-07-15"),),
    ),
    ("Discourse", "api_key", ("Api-Key", "{token}"), ((H, "Api-Username", "{username}"),)),
    ("MiniMax", "api_key", B, ((H, "group-id", "{group_id}"), (Q, "GroupId", "{group_id}"))),
    ("Gemini", "api_key", None, ((Q, "key", "{token}"),)),
    ("Google Maps", "api_key", None, ((Q, "key", "{token}"),)),
    ("Semrush", "api_key", None, ((Q, "key", "{token}"),)),
    ("Cal.com v1", "api_key", None, ((Q, "apiKey", "{token}"),)),
    ("Canny", "api_key", None, ((Q, "apiKey", "{token}"),)),
    ("Diffbot", "api_key", None, ((Q, "token", "{token}"),)),
    ("People Data Labs", "api_key", None, ((Q, "api_key", "{token}"),)),
    ("Smartlead", "api_key", None, ((Q, "api_key", "{token}"),)),
    ("Ghost", "api_key", None, ((Q, "key", "{token}"), (H, "Accept-Version", "v5.0"))),
    ("Telegram", "api_key", None, ()),  # the path: see path_prefix below
    ("ElevenLabs", "api_key", ("xi-api-key", "{token}"), ()),
    ("Brevo", "api_key", ("api-key", "{token}"), ()),
    ("Apollo", "api_key", ("x-api-key", "{token}"), ()),
    ("Exa", "api_key", ("x-api-key", "{token}"), ()),
    ("Pinecone", "api_key", ("Api-Key", "{token}"), ((H, "X-Pinecone-Api-Version", "2025-04"),)),
    ("Perplexity", "bearer", B, ()),
    ("xAI", "bearer", B, ()),
    ("Mistral", "bearer", B, ()),
    ("Replicate", "bearer", B, ()),
    ("fal.ai", "api_key", ("Authorization", "Key {token}"), ()),
    ("Resend", "bearer", B, ()),
    ("Vercel", "bearer", B, ()),
    ("Cloudflare", "bearer", B, ()),
    ("Sentry", "bearer", B, ()),
    ("PostHog", "bearer", B, ()),
    ("Okta", "api_key", ("Authorization", "SSWS {token}"), ()),
    ("Dynatrace", "api_key", ("Authorization", "Api-Token {token}"), ()),
    ("GitLab", "api_key", ("PRIVATE-TOKEN", "{token}"), ()),
    ("Freshsales", "api_key", ("Authorization", "Token token={token}"), ()),
    ("Shippo", "api_key", ("Authorization", "ShippoToken {token}"), ()),
    ("AWS", "aws_sigv4", None, ()),
]
FIELDS = {
    "bearer": {"token": "tok-1"},
    "api_key": {"token": "tok-1", "app_key": "app-2", "username": "system", "group_id": "g-3"},
    "basic": {"username": "user@example.com/token", "password": "pw"},
    "aws_sigv4": {"access_key_id": "AKID", "secret_access_key": "secret"},
}


def rules_for(
    name: str, kind: str, main: tuple[str, str] | None, extra: tuple[tuple[str, str, str], ...]
) -> InjectionRules:
    if kind == "aws_sigv4":
        return InjectionRules(sigv4=True)
    if name == "Telegram":
        return InjectionRules(path_prefix="/bot{token}")
    additional = tuple(AdditionalRule(t, n, v) for t, n, v in extra)  # type: ignore[arg-type]
    if main is None:
        return InjectionRules(additional=additional)
    return InjectionRules(header=main[0], format=main[1], additional=additional)


def test_the_table_lists_all_62_providers() -> None:
    assert len(PROVIDERS) == 62
    assert len({row[0] for row in PROVIDERS}) == 62


@pytest.mark.parametrize(
    ("name", "kind", "main", "extra"), PROVIDERS, ids=[row[0] for row in PROVIDERS]
)
def test_provider_is_expressible(
    name: str, kind: str, main: tuple[str, str] | None, extra: tuple[tuple[str, str, str], ...]
) -> None:
    rules = rules_for(name, kind, main, extra)
    validate_rules(rules)
    credential = Credential(kind, FIELDS[kind])  # type: ignore[arg-type]
    if rules.sigv4:
        return  # signed per request: see test_sigv4_conformance and test_wire
    if rules.path_prefix is not None:
        assert apply_path(rules, credential, "/getMe") == "/bottok-1/getMe"
        return
    headers, params = httpx.Headers(), []
    apply_rules(rules, credential, headers, params)
    if main is not None:
        expected = main[1].replace("{token}", "tok-1")
        if kind == "basic":
            expected = "Basic " + base64.b64encode(b"user@example.com/token:pw").decode()
        assert headers[main[0]] == expected
    for target, rule_name, _ in extra:
        assert (rule_name in headers) if target == H else any(k == rule_name for k, _ in params)
    to_wire(rules, credential, grant_id="6f1c9d1e-8a2b-4c3d-9e4f-5a6b7c8d9e0f")


def test_path_prefix_encodes_the_key_and_refuses_dot_segments() -> None:
    rules = InjectionRules(path_prefix="/bot{token}/")
    tricky = Credential("api_key", {"token": "12:ab/../x?y#z"})
    assert apply_path(rules, tricky, "/getMe") == "/bot12:ab%2F..%2Fx%3Fy%23z/getMe"
    assert apply_path(rules, Credential("api_key", {"token": "1:a"}), "getMe") == "/bot1:a/getMe"
    with pytest.raises(ValueError, match="path_prefix"):
        apply_path(
            InjectionRules(path_prefix="/{token}"), Credential("api_key", {"token": ".."}), "/x"
        )
    assert apply_path(InjectionRules(header="X-K", format="{token}"), tricky, "/same") == "/same"


@pytest.mark.parametrize(
    "prefix", ["bot{token}", "/bot{token}?x=1", "/a#{token}", "/a\\{token}", "/static"]
)
def test_bad_path_prefixes_are_refused(prefix: str) -> None:
    with pytest.raises(ValueError, match=r"^injection"):
        validate_rules(InjectionRules(path_prefix=prefix))
