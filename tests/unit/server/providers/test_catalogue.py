"""The shipped catalogue: it loads, covers every row of providers.md, and answers look-ups."""

from __future__ import annotations

import json
import re

import pytest

from vaultgate.server.errors import NotFound
from vaultgate.server.providers import Catalogue, load_catalogue, public_catalogue
from vaultgate.server.providers.templates import placeholders

# One slug per row of reference/providers.md (Cal.com's row is two APIs, hence two slugs).
EXPECTED_SLUGS = [
    "openai", "anthropic", "datadog", "stripe", "twilio", "sendgrid", "github", "airtable",
    "notion", "linear", "mailchimp", "shopify", "pagerduty", "postmark", "mailgun", "zendesk",
    "jira", "freshdesk", "bamboohr", "chargebee", "greenhouse-harvest", "lob", "easypost",
    "mixpanel", "mailjet", "algolia", "supabase", "rapidapi", "klaviyo", "discourse", "minimax",
    "google-gemini", "google-maps", "semrush", "cal-com-v1", "cal-com-v2", "canny", "diffbot",
    "people-data-labs", "smartlead", "ghost-content", "telegram", "elevenlabs", "brevo",
    "apollo", "exa", "pinecone", "perplexity", "xai", "mistral", "replicate", "fal", "resend",
    "vercel", "cloudflare", "sentry", "posthog", "okta", "dynatrace", "gitlab", "freshsales",
    "shippo", "aws",
]  # fmt: skip


@pytest.fixture(scope="module")
def catalogue() -> Catalogue:
    return load_catalogue()


def test_every_row_of_the_reference_is_in_the_catalogue(catalogue: Catalogue) -> None:
    assert len(set(EXPECTED_SLUGS)) == 63
    missing = [slug for slug in EXPECTED_SLUGS if slug not in catalogue]
    assert missing == []
    assert len(catalogue) >= 62


def test_load_is_cached(catalogue: Catalogue) -> None:
    assert load_catalogue() is catalogue


def test_get_returns_the_named_provider(catalogue: Catalogue) -> None:
    assert catalogue.get("openai").name == "OpenAI"


def test_get_of_an_unknown_slug_is_a_provider_not_found(catalogue: Catalogue) -> None:
    with pytest.raises(NotFound) as info:
        catalogue.get("no-such-api")
    assert info.value.code == "provider_not_found"
    assert info.value.status == 404


def test_all_keeps_catalogue_order_and_has_unique_slugs(catalogue: Catalogue) -> None:
    slugs = [provider.slug for provider in catalogue.all()]
    assert slugs[:2] == ["openai", "anthropic"]
    assert len(slugs) == len(set(slugs)) == len(catalogue)


def test_search_ranks_slug_and_name_before_hosts(catalogue: Catalogue) -> None:
    assert [p.slug for p in catalogue.search("GOOGLE")] == ["google-gemini", "google-maps"]
    # "stripe" is a slug; "mailgun" only matches Mailgun itself; hosts match last.
    assert catalogue.search("stripe")[0].slug == "stripe"
    assert [p.slug for p in catalogue.search("myshopify")] == ["shopify"]


def test_search_without_a_match_is_empty_and_blank_lists_everything(catalogue: Catalogue) -> None:
    assert catalogue.search("zzz-nothing") == ()
    assert catalogue.search("  ") == catalogue.all()


def test_public_catalogue_is_json_and_names_every_provider(catalogue: Catalogue) -> None:
    body = public_catalogue(catalogue)
    decoded = json.loads(json.dumps(body))
    assert [row["slug"] for row in decoded] == [p.slug for p in catalogue.all()]
    assert {"hosts", "injection", "credential_fields", "params", "docs_url"} <= set(decoded[0])


def test_every_template_that_can_back_a_secret_resolves_with_sample_params(
    catalogue: Catalogue,
) -> None:
    for provider in catalogue.all():
        params = {
            name: param.choices[0] if param.choices else "sample"
            for name, param in provider.params.items()
        }
        hosts = provider.resolve_hosts(params)
        assert hosts, provider.slug
        assert all("{" not in host for host in hosts), provider.slug
        rules = provider.injection_rules(params)
        rendered = [rules.format or "", *(rule.value for rule in rules.additional)]
        left = {name for value in rendered for name in placeholders(value)}
        # Only credential fields remain for the injection package to fill.
        assert left <= {*provider.credential_field_names(), "basic"}, provider.slug


def test_every_docs_url_is_https_and_every_template_has_a_type(catalogue: Catalogue) -> None:
    for provider in catalogue.all():
        assert provider.docs_url.startswith("https://"), provider.slug
        assert provider.credential_type in {"bearer", "api_key", "basic", "aws_sigv4"}


def test_header_names_fit_the_alter_sdk_wire_rule(catalogue: Catalogue) -> None:
    # Retrieve mode hands header names to the official SDK, which is stricter than RFC 9110.
    sdk_rule = re.compile(r"[A-Za-z][A-Za-z0-9-]{0,59}\Z")
    for provider in catalogue.all():
        rules = provider.injection
        names = [rules.header] if rules.header else []
        names += [rule.name for rule in rules.additional if rule.target == "header"]
        assert all(sdk_rule.match(name) for name in names), provider.slug
