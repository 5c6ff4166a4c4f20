"""Provider methods: filling host parameters, checking keys, completing credentials."""

from __future__ import annotations

import json

import pytest

from vaultgate.server.errors import Unprocessable
from vaultgate.server.providers import Provider, load_catalogue

KEY = "sk-proj-abcDEF123secretvalue"


def provider(slug: str) -> Provider:
    return load_catalogue().get(slug)


# -- hosts -----------------------------------------------------------------------------------


def test_resolve_hosts_fills_and_lowercases_templates() -> None:
    okta = provider("okta")
    assert okta.resolve_hosts({"org": "Acme-Corp"}) == (
        "acme-corp.okta.com",
        "acme-corp.oktapreview.com",
    )


def test_resolve_hosts_without_params_returns_fixed_hosts() -> None:
    assert provider("openai").resolve_hosts({}) == ("api.openai.com",)


def test_a_dotted_parameter_is_accepted() -> None:
    assert provider("discourse").resolve_hosts({"host": "forum.example.com"}) == (
        "forum.example.com",
    )


def test_a_missing_parameter_names_its_field() -> None:
    with pytest.raises(Unprocessable) as info:
        provider("shopify").resolve_hosts({})
    assert info.value.field == "provider_params.shop"
    assert info.value.status == 422


@pytest.mark.parametrize(
    "value",
    ["evil.com/x", "user@evil.com", "shop:8443", "", "-shop", "shop-", "a..b", "sh op", "x" * 64],
)
def test_an_invalid_parameter_is_refused(value: str) -> None:
    with pytest.raises(Unprocessable) as info:
        provider("shopify").resolve_hosts({"shop": value})
    assert info.value.field == "provider_params.shop"


def test_an_unknown_parameter_is_refused() -> None:
    with pytest.raises(Unprocessable) as info:
        provider("openai").resolve_hosts({"region": "eu"})
    assert info.value.field == "provider_params.region"


def test_a_parameter_outside_its_choices_is_refused() -> None:
    with pytest.raises(Unprocessable) as info:
        provider("datadog").resolve_hosts({"site": "evil.example"})
    assert info.value.field == "provider_params.site"


def test_a_value_that_overflows_a_label_is_refused() -> None:
    # 62 characters is a valid label, but "-dsn" makes the second Algolia host's label too long.
    with pytest.raises(Unprocessable) as info:
        provider("algolia").resolve_hosts({"app_id": "a" * 62})
    assert info.value.field == "provider_params.app_id"


def test_optional_parameters_add_hosts_only_when_given() -> None:
    pinecone = provider("pinecone")
    assert pinecone.resolve_hosts({}) == ("api.pinecone.io",)
    assert pinecone.resolve_hosts({"index": "docs-abc1234", "environment": "aped-4627-b74a"}) == (
        "api.pinecone.io",
        "docs-abc1234.svc.aped-4627-b74a.pinecone.io",
    )


def test_base_path_is_filled_from_params() -> None:
    bamboo = provider("bamboohr")
    assert bamboo.resolve_base_path({"company": "acme"}) == "/api/gateway.php/acme"
    assert provider("openai").resolve_base_path({}) is None
    with pytest.raises(Unprocessable):
        bamboo.resolve_base_path({})


# -- keys ------------------------------------------------------------------------------------


def test_check_key_accepts_a_matching_key() -> None:
    provider("openai").check_key({"token": KEY})


@pytest.mark.parametrize(
    ("slug", "key"),
    [
        ("anthropic", "sk-ant-api03-xyz"),
        ("stripe", "sk_live_abc"),
        ("stripe", "sk_test_abc"),
        ("stripe", "rk_live_abc"),
        ("github", "ghp_abc"),
        ("github", "github_pat_11ABC"),
        ("github", "0123456789abcdef0123456789abcdef01234567"),
        ("google-gemini", "AIzaSyA-example"),
    ],
)
def test_real_key_shapes_pass(slug: str, key: str) -> None:
    provider(slug).check_key({"token": key})


@pytest.mark.parametrize(
    ("slug", "key"),
    [
        ("openai", "ghp_wrongprovider"),
        ("anthropic", "sk-proj-openai"),
        ("stripe", "pk_live_publishable"),
        ("github", "gho"),
    ],
)
def test_check_key_refuses_another_shape_without_echoing_it(slug: str, key: str) -> None:
    with pytest.raises(Unprocessable) as info:
        provider(slug).check_key({"token": key})
    assert info.value.field == "credential.token"
    assert key not in info.value.message
    assert key not in str(info.value.envelope())


def test_check_key_names_the_field_that_holds_the_key() -> None:
    with pytest.raises(Unprocessable) as info:
        provider("twilio").check_key({"username": "not-a-sid", "password": "p"})
    assert info.value.field == "credential.username"


def test_check_key_refuses_a_missing_key() -> None:
    with pytest.raises(Unprocessable):
        provider("openai").check_key({})


def test_a_provider_without_pattern_accepts_any_key() -> None:
    provider("mistral").check_key({"token": "anything-at-all"})


# -- credentials -----------------------------------------------------------------------------


def test_prepare_credential_fills_the_fixed_half_of_basic_auth() -> None:
    assert provider("mailgun").prepare_credential({"password": "key-123"}) == {
        "username": "api",
        "password": "key-123",
    }
    assert provider("chargebee").prepare_credential({"username": "live_abc"}) == {
        "username": "live_abc",
        "password": "",
    }


def test_prepare_credential_requires_the_type_fields() -> None:
    with pytest.raises(Unprocessable) as info:
        provider("jira").prepare_credential({"username": "jane@example.com"})
    assert info.value.field == "credential.password"


def test_an_empty_value_counts_as_missing_unless_the_default_is_empty() -> None:
    with pytest.raises(Unprocessable) as info:
        provider("jira").prepare_credential({"username": "jane@example.com", "password": ""})
    assert info.value.field == "credential.password"


def test_prepare_credential_requires_required_extra_fields() -> None:
    discourse = provider("discourse")
    with pytest.raises(Unprocessable) as info:
        discourse.prepare_credential({"token": "k"})
    assert info.value.field == "credential.api_username"
    assert discourse.prepare_credential({"token": "k", "api_username": "system"})["api_username"]


def test_prepare_credential_refuses_unknown_fields() -> None:
    with pytest.raises(Unprocessable) as info:
        provider("openai").prepare_credential({"token": KEY, "password": "x"})
    assert info.value.field == "credential.password"


def test_prepare_credential_checks_the_key_shape() -> None:
    with pytest.raises(Unprocessable) as info:
        provider("openai").prepare_credential({"token": "not-a-key"})
    assert info.value.field == "credential.token"


def test_optional_extra_field_may_be_left_out_and_is_stored_blank() -> None:
    # Blank, so the rule naming it renders blank and is left out of the request.
    prepared = provider("datadog").prepare_credential({"token": "abc"})
    assert prepared == {"token": "abc", "application_key": ""}


# -- public form -----------------------------------------------------------------------------


def test_to_public_describes_fields_params_and_rules() -> None:
    public = provider("mailgun").to_public()
    json.dumps(public)
    fields = {row["name"]: row for row in public["credential_fields"]}
    assert fields["username"]["default"] == "api"
    assert fields["password"]["required"] is True
    assert public["injection"] == {
        "header": "Authorization",
        "format": "Basic {basic}",
        "additional": [],
        "sigv4": False,
    }
    shopify = provider("shopify").to_public()
    assert shopify["params"][0]["name"] == "shop"
    assert shopify["hosts"] == ["{shop}.myshopify.com"]


def test_to_public_of_aws_carries_the_signing_defaults() -> None:
    public = provider("aws").to_public()
    assert public["aws"] == {"region": "us-east-1", "service": "iam"}
    assert public["placement"] == "sigv4"
