"""Load-time checks: a malformed template never reaches the running server."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from vaultgate.server.providers import CatalogueError, parse_catalogue

VALID: dict[str, Any] = {
    "slug": "example",
    "name": "Example",
    "credential_type": "api_key",
    "hosts": ["{tenant}.api.example.com"],
    "params": {"tenant": {"description": "Tenant name"}},
    "injection": {
        "header": "X-Api-Key",
        "format": "Key {token}",
        "additional": [{"target": "header", "name": "X-Tenant", "value": "{tenant}"}],
    },
    "key_pattern": "^ex_",
    "key_hint": "a key that starts with ex_",
    "docs_url": "https://example.com/docs",
}


def entry(**changes: Any) -> dict[str, Any]:
    data = copy.deepcopy(VALID)
    for key, value in changes.items():
        if value is None:
            data.pop(key, None)
        else:
            data[key] = value
    return data


def injection(**rules: Any) -> dict[str, Any]:
    return {**VALID["injection"], **rules}


def test_the_valid_entry_loads() -> None:
    catalogue = parse_catalogue([entry()])
    provider = catalogue.get("example")
    assert provider.placement == "header"
    assert provider.resolve_hosts({"tenant": "t1"}) == ("t1.api.example.com",)


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({"slug": "Bad Slug"}, "slug"),
        ({"docs_url": "http://example.com"}, "docs_url"),
        ({"credential_type": "oauth"}, "schema"),
        ({"surprise": 1}, "schema"),
        ({"hosts": []}, "schema"),
        ({"hosts": ["api.example.com/path"]}, "host"),
        ({"hosts": ["*.com"]}, "wildcard"),
        ({"hosts": ["api.example.com:70000"]}, "port"),
        ({"hosts": ["ftp://api.example.com"]}, "host"),
        ({"hosts": ["{other}.example.com"]}, "undeclared"),
        (
            {"params": {"tenant": {"description": "t"}, "unused": {"description": "u"}}},
            "never used",
        ),
        ({"params": {"tenant": {"description": "t", "default": "a/b"}}}, "DNS"),
        ({"injection": injection(header="Bad Header")}, "RFC 9110"),
        ({"injection": injection(header="Host")}, "may not be injected"),
        ({"injection": injection(header="Content-Length")}, "may not be injected"),
        ({"injection": injection(format="Key {password}")}, "unknown names"),
        ({"injection": injection(format="Key {token!r}")}, "invalid placeholder"),
        ({"injection": injection(format="Key {{token}}")}, "literal brace"),
        ({"injection": injection(format="Key {token}\r\nX-Evil: 1")}, "CR, LF or NUL"),
        ({"injection": injection(format="static", additional=[])}, "never send"),
        ({"injection": injection(format=None)}, "go together"),
        ({"injection": injection(sigv4=True)}, "sigv4"),
        (
            {"injection": injection(additional=[{"target": "query", "name": "a b", "value": "1"}])},
            "query parameter name",
        ),
        ({"key_pattern": "(unclosed"}, "pattern"),
        ({"key_pattern": None}, "key_hint without key_pattern"),
        ({"key_field": "password"}, "key_field"),
        ({"credential_defaults": {"username": "api"}}, "unknown names"),
        ({"aws": {"region": "us-east-1", "service": "iam"}}, "aws"),
        ({"base_path": "v1"}, "base_path"),
    ],
)
def test_a_malformed_template_is_refused(changes: dict[str, Any], problem: str) -> None:
    with pytest.raises(CatalogueError) as info:
        parse_catalogue([entry(**changes)])
    assert problem.lower() in str(info.value).lower()


def test_a_duplicate_slug_is_refused() -> None:
    with pytest.raises(CatalogueError, match="twice"):
        parse_catalogue([entry(), entry()])


def test_basic_templates_may_use_the_derived_basic_field_but_bearer_ones_may_not() -> None:
    basic = entry(credential_type="basic", key_pattern=None, key_hint=None)
    basic["injection"] = {"header": "Authorization", "format": "Basic {basic}"}
    basic["hosts"] = ["api.example.com"]
    del basic["params"]
    assert parse_catalogue([basic]).get("example").key_field == "username"
    basic["credential_type"] = "bearer"
    with pytest.raises(CatalogueError, match="unknown names"):
        parse_catalogue([basic])


def test_extra_fields_may_be_used_but_not_shadow_type_fields() -> None:
    data = entry(fields={"app_key": {"description": "Application key"}})
    data["injection"] = injection(
        additional=[{"target": "header", "name": "X-App-Key", "value": "{app_key}"}]
    )
    assert "app_key" in parse_catalogue([data]).get("example").fields
    with pytest.raises(CatalogueError, match="shadows"):
        parse_catalogue([entry(fields={"token": {"description": "again"}})])


def test_optional_params_may_not_feed_injection_templates() -> None:
    data = entry(params={"tenant": {"description": "t", "optional": True}})
    with pytest.raises(CatalogueError, match="unknown names"):
        parse_catalogue([data])


def test_sigv4_needs_aws_type_and_defaults() -> None:
    aws = {
        "slug": "cloud",
        "name": "Cloud",
        "credential_type": "aws_sigv4",
        "hosts": ["iam.amazonaws.com"],
        "injection": {"sigv4": True},
        "aws": {"region": "us-east-1", "service": "iam"},
        "docs_url": "https://example.com",
    }
    assert parse_catalogue([aws]).get("cloud").placement == "sigv4"
    without_defaults = {k: v for k, v in aws.items() if k != "aws"}
    with pytest.raises(CatalogueError, match="aws defaults"):
        parse_catalogue([without_defaults])
    with pytest.raises(CatalogueError, match="sigv4"):
        parse_catalogue([{**aws, "injection": {}}])


def test_a_path_template_carries_no_rules() -> None:
    path = entry(placement="path", injection={}, hosts=["api.example.com"], params=None)
    assert parse_catalogue([path]).get("example").injectable is False
    with pytest.raises(CatalogueError, match="path"):
        parse_catalogue([entry(placement="path")])
