"""Injection rules: validation, templates, and how they land on a request."""

from __future__ import annotations

import base64

import httpx
import pytest

from vaultgate.injection.credential import Credential
from vaultgate.injection.rules import (
    AdditionalRule,
    InjectionRuleError,
    InjectionRules,
    apply_rules,
    apply_rules_to_pairs,
    default_rules,
    placeholders,
    render,
    rendered,
    strip_query,
    template_fields,
    validate_rules,
)

TOKEN = "sk-test-0123456789"
BEARER = Credential("bearer", {"token": TOKEN})
BASIC = Credential("basic", {"username": "ann@example.com/token", "password": "p4ss:word"})


def rule(target: str, name: str, value: str) -> AdditionalRule:
    return AdditionalRule(target, name, value)  # type: ignore[arg-type]


def error_field(rules: InjectionRules) -> str:
    with pytest.raises(InjectionRuleError) as caught:
        validate_rules(rules)
    return caught.value.field


# --- validate_rules --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "rules",
    [
        InjectionRules(header="Authorization", format="Bearer {token}"),
        InjectionRules(header="X-API-Key", format="{token}"),
        InjectionRules(header="Authorization", format="Token token={token}"),
        InjectionRules(header="Authorization", format="Basic {basic}"),
        InjectionRules(
            header="x-api-key",
            format="{token}",
            additional=(rule("header", "anthropic-version", "2023-06-01"),),
        ),
        InjectionRules(additional=(rule("query", "key", "{token}"),)),
        InjectionRules(
            header="Authorization",
            format="Bearer {token}",
            additional=(rule("header", "group-id", "{group}"), rule("query", "GroupId", "{group}")),
        ),
        InjectionRules(sigv4=True),
        InjectionRules(header="X_Odd.Token!", format="{token}"),  # any RFC 9110 token
    ],
)
def test_valid_rule_sets_pass(rules: InjectionRules) -> None:
    validate_rules(rules)


@pytest.mark.parametrize(
    ("rules", "field"),
    [
        (InjectionRules(), "injection"),
        (
            InjectionRules(additional=(rule("header", "anthropic-version", "2023-06-01"),)),
            "injection",
        ),
        (InjectionRules(header="Authorization"), "injection.format"),
        (InjectionRules(format="Bearer {token}"), "injection.header"),
        (InjectionRules(header="Bad Name", format="{token}"), "injection.header"),
        (InjectionRules(header="X-Key:", format="{token}"), "injection.header"),
        (InjectionRules(header="", format="{token}"), "injection.header"),
        (InjectionRules(header="X-Key\r\nEvil", format="{token}"), "injection.header"),
        (InjectionRules(header="X-Key", format="{token}\r\nX-Evil: 1"), "injection.format"),
        (InjectionRules(header="X-Key", format="{token}\x00"), "injection.format"),
        (InjectionRules(header="X-Key", format="{token.upper}"), "injection.format"),
        (InjectionRules(header="X-Key", format="{0}"), "injection.format"),
        (InjectionRules(header="X-Key", format="{}"), "injection.format"),
        (InjectionRules(header="X-Key", format="{token[0]}"), "injection.format"),
        (InjectionRules(header="X-Key", format="{token!r}"), "injection.format"),
        (InjectionRules(header="X-Key", format="{token:>40}"), "injection.format"),
        (InjectionRules(header="X-Key", format="{{literal}} {token}"), "injection.format"),
        (InjectionRules(header="X-Key", format="{token"), "injection.format"),
        (InjectionRules(header="X-Key", format="Cl\u00e9 {token}"), "injection.format"),
        (
            InjectionRules(
                header="X-Key", format="{token}", additional=(rule("header", "X-V", "\x01"),)
            ),
            "injection.additional[0].value",
        ),
        (
            InjectionRules(additional=(rule("query", "", "{token}"),)),
            "injection.additional[0].name",
        ),
        (
            InjectionRules(
                header="X-Key",
                format="{token}",
                additional=(rule("header", "X-Ok", "1"), rule("header", "Host", "{token}")),
            ),
            "injection.additional[1].name",
        ),
        (
            InjectionRules(additional=(rule("cookie", "a", "{token}"),)),
            "injection.additional[0].target",
        ),
        (
            InjectionRules(
                header="X-Key", format="{token}", additional=(rule("header", "x-key", "2"),)
            ),
            "injection.additional[0].name",
        ),
        (
            InjectionRules(
                additional=(rule("query", "k", "{token}"), rule("query", "k", "{token}"))
            ),
            "injection.additional[1].name",
        ),
        (
            InjectionRules(
                additional=tuple(rule("header", f"X-H{i}", "{token}") for i in range(17))
            ),
            "injection.additional",
        ),
        (InjectionRules(header="Authorization", format="x", sigv4=True), "injection.sigv4"),
    ],
)
def test_invalid_rule_sets_name_the_field(rules: InjectionRules, field: str) -> None:
    assert error_field(rules) == field


def test_sixteen_additional_rules_are_allowed() -> None:
    validate_rules(
        InjectionRules(additional=tuple(rule("header", f"X-H{i}", "{token}") for i in range(16)))
    )


@pytest.mark.parametrize(
    "name",
    [
        "Host",
        "content-length",
        "Transfer-Encoding",
        "Connection",
        "Keep-Alive",
        "TE",
        "Trailer",
        "Upgrade",
        "Proxy-Authorization",
        "Proxy-Connection",
        "Proxy-Anything",
        "Cookie",
    ],
)
def test_connection_and_proxy_headers_cannot_carry_a_credential(name: str) -> None:
    assert error_field(InjectionRules(header=name, format="{token}")) == "injection.header"


def test_error_is_a_value_error_with_field_and_message() -> None:
    with pytest.raises(ValueError, match=r"^injection\.header: ") as caught:
        validate_rules(InjectionRules(header="Host", format="{token}"))
    assert isinstance(caught.value, InjectionRuleError)
    assert caught.value.message


# --- templates -------------------------------------------------------------------------------


def test_placeholders_lists_fields() -> None:
    assert placeholders("{username}/token:{password}") == {"username", "password"}
    assert placeholders("2023-06-01") == set()


def test_render_substitutes_fields() -> None:
    assert render("Token token={token}", BEARER) == f"Token token={TOKEN}"
    assert render("{username}/token:{password}", BASIC) == "ann@example.com/token/token:p4ss:word"


def test_render_refuses_a_missing_field_without_showing_values() -> None:
    with pytest.raises(InjectionRuleError, match="password") as caught:
        render("{token}:{password}", BEARER, field="injection.format")
    assert caught.value.field == "injection.format"
    assert TOKEN not in str(caught.value)


def test_render_refuses_a_value_that_would_split_a_header() -> None:
    evil = Credential("bearer", {"token": "abc\r\nX-Evil: 1"})
    with pytest.raises(InjectionRuleError) as caught:
        render("Bearer {token}", evil)
    assert "abc" not in str(caught.value)


@pytest.mark.parametrize("template", ["{token.__class__}", "{0}", "{token[0]}", "{token!s}"])
def test_render_refuses_attribute_index_and_conversion(template: str) -> None:
    with pytest.raises(InjectionRuleError):
        render(template, BEARER)


def test_a_bad_template_is_refused_every_time_under_the_field_that_used_it() -> None:
    for field in ("injection.format", "injection.additional[0].value", "injection.format"):
        with pytest.raises(InjectionRuleError) as caught:
            placeholders("Bearer {token!r}", field=field)
        assert caught.value.field == field
        with pytest.raises(InjectionRuleError) as caught:
            render("Bearer {token!r}", {"token": "t"}, field=field)
        assert caught.value.field == field


def test_template_fields_adds_basic_for_basic_credentials() -> None:
    fields = template_fields(BASIC)
    assert base64.b64decode(fields["basic"]) == b"ann@example.com/token:p4ss:word"
    assert fields["username"] == "ann@example.com/token"
    assert "basic" not in template_fields(BEARER)


@pytest.mark.parametrize(
    ("kind", "rules"),
    [
        ("bearer", InjectionRules(header="Authorization", format="Bearer {token}")),
        ("api_key", InjectionRules(header="X-API-Key", format="{token}")),
        ("basic", InjectionRules(header="Authorization", format="Basic {basic}")),
        ("aws_sigv4", InjectionRules(sigv4=True)),
    ],
)
def test_default_rules(kind: str, rules: InjectionRules) -> None:
    assert default_rules(kind) == rules  # type: ignore[arg-type]
    validate_rules(rules)


def test_default_rules_refuses_unknown_type() -> None:
    with pytest.raises(InjectionRuleError):
        default_rules("oauth")  # type: ignore[arg-type]


# --- apply_rules -----------------------------------------------------------------------------


def test_bearer_replaces_the_callers_credentials() -> None:
    headers = httpx.Headers(
        {
            "authorization": "Bearer mine",
            "Cookie": "s=1",
            "Proxy-Authorization": "x",
            "Accept": "*/*",
        }
    )
    params: list[tuple[str, str]] = [("q", "1")]
    apply_rules(default_rules("bearer"), BEARER, headers, params)
    assert headers.get_list("Authorization") == [f"Bearer {TOKEN}"]
    assert "cookie" not in headers
    assert "proxy-authorization" not in headers
    assert headers["accept"] == "*/*"
    assert params == [("q", "1")]


def test_injected_header_names_are_removed_case_insensitively() -> None:
    headers = httpx.Headers([("x-api-key", "forged"), ("X-API-KEY", "forged2")])
    apply_rules(default_rules("api_key"), Credential("api_key", {"token": TOKEN}), headers, [])
    assert headers.get_list("X-API-Key") == [TOKEN]


def test_basic_default_rule_is_rfc7617() -> None:
    headers = httpx.Headers()
    apply_rules(default_rules("basic"), BASIC, headers, [])
    expected = base64.b64encode(b"ann@example.com/token:p4ss:word").decode()
    assert headers["authorization"] == f"Basic {expected}"


def test_query_rule_replaces_same_named_params_and_keeps_others() -> None:
    params = [("key", "caller"), ("q", "x"), ("key", "again")]
    headers = httpx.Headers({"Authorization": "Bearer caller"})
    rules = InjectionRules(additional=(rule("query", "key", "{token}"),))
    apply_rules(rules, BEARER, headers, params)
    assert params == [("q", "x"), ("key", TOKEN)]
    assert "authorization" not in headers  # the caller's credential never travels


def test_multi_header_and_query_rules() -> None:
    cred = Credential("api_key", {"token": TOKEN, "group": "g-42"})
    rules = InjectionRules(
        header="Authorization",
        format="Bearer {token}",
        additional=(
            rule("header", "group-id", "{group}"),
            rule("query", "GroupId", "{group}"),
            rule("header", "anthropic-version", "2023-06-01"),
        ),
    )
    headers, params = httpx.Headers(), []
    apply_rules(rules, cred, headers, params)
    assert headers["authorization"] == f"Bearer {TOKEN}"
    assert headers["group-id"] == "g-42"
    assert headers["anthropic-version"] == "2023-06-01"
    assert params == [("GroupId", "g-42")]


def test_blank_additional_values_are_skipped_but_blank_main_is_an_error() -> None:
    cred = Credential("api_key", {"token": TOKEN, "extra": ""})
    rules = InjectionRules(
        header="X-Key", format="{token}", additional=(rule("header", "X-Extra", "{extra}"),)
    )
    headers = httpx.Headers({"X-Extra": "caller"})
    apply_rules(rules, cred, headers, [])
    assert "x-extra" not in headers
    with pytest.raises(InjectionRuleError):
        apply_rules(
            default_rules("api_key"), Credential("api_key", {"token": " "}), httpx.Headers(), []
        )


def test_a_failed_render_changes_nothing() -> None:
    headers = httpx.Headers({"Authorization": "Bearer caller"})
    params = [("a", "1")]
    rules = InjectionRules(
        header="X-Key", format="{token}", additional=(rule("query", "k", "{missing}"),)
    )
    with pytest.raises(InjectionRuleError):
        apply_rules(rules, BEARER, headers, params)
    assert headers["authorization"] == "Bearer caller"
    assert params == [("a", "1")]


def test_apply_rules_refuses_sigv4() -> None:
    with pytest.raises(InjectionRuleError):
        apply_rules(InjectionRules(sigv4=True), BEARER, httpx.Headers(), [])


def test_rendered_values_do_not_show_in_repr() -> None:
    values = rendered(default_rules("bearer"), BEARER)
    assert TOKEN not in repr(values)
    assert values[0].value == f"Bearer {TOKEN}"


# --- strip_query -----------------------------------------------------------------------------


def test_strip_query_removes_injected_params() -> None:
    url = f"https://maps.googleapis.com/maps/api/geocode/json?address=Paris&key={TOKEN}&k%65y=x"
    stripped = strip_query(url, {"key"})
    assert stripped == "https://maps.googleapis.com/maps/api/geocode/json?address=Paris"
    assert TOKEN not in stripped


def test_strip_query_keeps_other_params_and_urls_without_query() -> None:
    assert strip_query("https://h/p?a=1&b=2", {"key"}) == "https://h/p?a=1&b=2"
    assert strip_query("https://h/p", {"key"}) == "https://h/p"
    assert strip_query("https://h/p?key=1", {"key"}) == "https://h/p"


@pytest.mark.parametrize("value", ["Jos\u00e9", "a\x01b", "a\x7fb", "a\x1fb", "\x08"])
def test_header_values_must_be_visible_ascii(value: str) -> None:
    cred = Credential("api_key", {"token": value})
    with pytest.raises(InjectionRuleError) as caught:
        apply_rules(default_rules("api_key"), cred, httpx.Headers(), [])
    assert caught.value.field == "injection.format"
    assert value not in str(caught.value)


@pytest.mark.parametrize("value", ["a\tb", '~ !"#', "a" * 200])
def test_header_values_may_hold_tabs_spaces_and_visible_ascii(value: str) -> None:
    headers = httpx.Headers()
    apply_rules(default_rules("api_key"), Credential("api_key", {"token": value}), headers, [])
    assert headers["x-api-key"] == value


def test_query_values_may_be_any_text() -> None:
    params: list[tuple[str, str]] = []
    rules = InjectionRules(additional=(rule("query", "key", "{token}"),))
    apply_rules(rules, Credential("api_key", {"token": "Jos\u00e9\tx"}), httpx.Headers(), params)
    assert params == [("key", "Jos\u00e9\tx")]


PAIR_CASES = [
    (default_rules("bearer"), BEARER),
    (default_rules("basic"), BASIC),
    (InjectionRules(header="X-Api-Key", format="Key {token}"), BEARER),
    (
        InjectionRules(
            header="Authorization",
            format="Bearer {token}",
            additional=(
                rule("header", "anthropic-version", "2023-06-01"),
                rule("query", "key", "{token}"),
                rule("header", "X-Blank", ""),
            ),
        ),
        BEARER,
    ),
]


@pytest.mark.parametrize(("rules", "credential"), PAIR_CASES)
def test_apply_rules_to_pairs_does_what_apply_rules_does(
    rules: InjectionRules, credential: Credential
) -> None:
    caller = [
        ("authorization", "Bearer caller"),
        ("COOKIE", "c=1"),
        ("x-api-key", "mine"),
        ("Anthropic-Version", "old"),
        ("accept", "a"),
        ("accept", "b"),
    ]
    params_a, params_b = [("key", "caller"), ("q", "1")], [("key", "caller"), ("q", "1")]
    headers = httpx.Headers(caller)
    apply_rules(rules, credential, headers, params_a)
    pairs = apply_rules_to_pairs(rules, credential, caller, params_b)
    assert [(k.lower(), v) for k, v in pairs] == headers.multi_items()
    assert params_b == params_a


def test_apply_rules_to_pairs_changes_nothing_when_a_value_cannot_render() -> None:
    caller, params = [("accept", "a")], [("q", "1")]
    with pytest.raises(InjectionRuleError):
        apply_rules_to_pairs(
            default_rules("api_key"), Credential("api_key", {"token": "a\x01"}), caller, params
        )
    assert (caller, params) == ([("accept", "a")], [("q", "1")])
