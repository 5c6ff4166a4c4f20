"""The injection shapes of providers whose APIs want something out of the ordinary."""

from __future__ import annotations

import pytest

from vaultgate.injection.rules import AdditionalRule, InjectionRules
from vaultgate.server.providers import Provider, load_catalogue


def provider(slug: str) -> Provider:
    return load_catalogue().get(slug)


def test_openai_is_a_bearer_token() -> None:
    openai = provider("openai")
    assert openai.credential_type == "bearer"
    assert openai.injection == InjectionRules(header="Authorization", format="Bearer {token}")
    assert openai.hosts == ("api.openai.com",)
    assert openai.key_pattern == "^sk-"


def test_anthropic_sends_x_api_key_and_the_version_header() -> None:
    anthropic = provider("anthropic")
    assert anthropic.credential_type == "api_key"
    assert anthropic.injection.header == "x-api-key"
    assert anthropic.injection.format == "{token}"
    assert anthropic.injection.additional == (
        AdditionalRule("header", "anthropic-version", "2023-06-01"),
    )


def test_notion_pins_its_version_header() -> None:
    notion = provider("notion")
    assert notion.injection.format == "Bearer {token}"
    assert AdditionalRule("header", "Notion-Version", "2022-06-28") in notion.injection.additional


def test_gemini_takes_the_key_as_the_query_parameter_key() -> None:
    gemini = provider("google-gemini")
    assert gemini.placement == "query"
    assert gemini.injection.header is None
    assert gemini.injection.additional == (AdditionalRule("query", "key", "{token}"),)


def test_twilio_is_basic_with_the_account_sid_as_username() -> None:
    twilio = provider("twilio")
    assert twilio.credential_type == "basic"
    assert twilio.injection.format == "Basic {basic}"
    assert twilio.key_field == "username"


def test_zendesk_username_carries_the_token_suffix() -> None:
    zendesk = provider("zendesk")
    assert zendesk.credential_type == "basic"
    assert zendesk.injection.format == "Basic {basic}"
    assert zendesk.resolve_hosts({"subdomain": "acme"}) == ("acme.zendesk.com",)
    zendesk.check_key({"username": "jane@example.com/token", "password": "t0k3n"})
    assert "/token" in zendesk.notes


def test_algolia_sends_two_headers_with_the_app_id_from_the_host_parameter() -> None:
    rules = provider("algolia").injection_rules({"app_id": "LATENCY"})
    assert rules.header == "X-Algolia-API-Key"
    assert rules.format == "{token}"
    assert rules.additional == (AdditionalRule("header", "X-Algolia-Application-Id", "LATENCY"),)


def test_supabase_sends_the_same_key_twice() -> None:
    supabase = provider("supabase")
    assert supabase.injection.format == "Bearer {token}"
    assert supabase.injection.additional == (AdditionalRule("header", "apikey", "{token}"),)


def test_pagerduty_uses_token_token() -> None:
    pagerduty = provider("pagerduty")
    assert pagerduty.injection == InjectionRules(
        header="Authorization", format="Token token={token}"
    )


def test_linear_sends_the_key_raw() -> None:
    linear = provider("linear")
    assert linear.injection == InjectionRules(header="Authorization", format="{token}")


def test_aws_is_sigv4_with_default_scope() -> None:
    aws = provider("aws")
    assert aws.credential_type == "aws_sigv4"
    assert aws.injection.sigv4 is True
    assert aws.placement == "sigv4"
    assert aws.aws is not None
    assert (aws.aws.region, aws.aws.service) == ("us-east-1", "iam")
    assert "iam.amazonaws.com" in aws.hosts
    assert aws.key_field == "access_key_id"


def test_rapidapi_repeats_the_host_in_a_header() -> None:
    rules = provider("rapidapi").injection_rules({"api": "weather"})
    assert AdditionalRule("header", "X-RapidAPI-Host", "weather.p.rapidapi.com") in rules.additional


def test_datadog_sends_the_application_key_from_an_extra_field() -> None:
    datadog = provider("datadog")
    assert AdditionalRule("header", "DD-APPLICATION-KEY", "{application_key}") in (
        datadog.injection.additional
    )
    assert datadog.fields["application_key"].required is False
    assert datadog.resolve_hosts({}) == ("api.datadoghq.com",)
    assert datadog.resolve_hosts({"site": "datadoghq.eu"}) == ("api.datadoghq.eu",)


@pytest.mark.parametrize(
    ("slug", "username", "password"),
    [("mailgun", "api", None), ("freshdesk", None, "X"), ("stripe", None, None)],
)
def test_single_key_apis_fill_in_the_fixed_half(
    slug: str, username: str | None, password: str | None
) -> None:
    defaults = provider(slug).credential_defaults
    assert defaults.get("username") == username
    assert defaults.get("password") == password


def test_stripe_is_a_bearer_token_so_the_key_is_the_only_field() -> None:
    assert provider("stripe").injection.format == "Bearer {token}"


def test_telegram_is_listed_but_cannot_back_a_secret() -> None:
    telegram = provider("telegram")
    assert telegram.placement == "path"
    assert telegram.injectable is False
    assert telegram.injection == InjectionRules()
    assert "path" in telegram.notes


def test_mailchimp_data_centre_comes_from_the_key() -> None:
    mailchimp = provider("mailchimp")
    params = mailchimp.derive_params({"username": "anystring", "password": "0123abcd-us6"})
    assert params == {"dc": "us6"}
    assert mailchimp.resolve_hosts(params) == ("us6.api.mailchimp.com",)
    assert mailchimp.derive_params({"password": "no-suffix"}) == {}
