"""Parsing and judging per-request constraints: malformed headers are a 400, never ignored."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from vaultgate.server.errors import Forbidden, InvalidInput
from vaultgate.server.policy.constraints import (
    MAX_RULE_HEADER,
    RULE_HEADER,
    SCOPE_HEADER,
    enforce,
    parse_constraints,
    redacted,
)


def _rule(rule_type: str, body: Any) -> dict[str, str]:
    raw = json.dumps({"rule_type": rule_type, "rule_body": body}, separators=(",", ":"))
    return {RULE_HEADER: base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")}


def test_no_headers_no_constraints() -> None:
    assert parse_constraints({}) is None
    enforce(None, "proxy", "POST", "g")


@pytest.mark.parametrize(
    "headers",
    [
        {RULE_HEADER: "!!not-base64!!"},
        {RULE_HEADER: base64.urlsafe_b64encode(b"[1]").decode()},
        {RULE_HEADER: "A" * (MAX_RULE_HEADER + 1)},
        _rule("json_match", {"when": {"method": 5}, "effect": "deny"}),
        _rule("json_match", {"when": {"method": "GET"}, "effect": "allow"}),
        _rule("content_match", {"match": {}, "effect": "deny"}),
        _rule("content_match", {"match": {"families": ["chat"]}, "effect": "deny"}),
        _rule("content_match", {"match": {"families": ["write"]}, "effect": "redact"}),
        _rule("content_match", {"match": {"families": ["write"]}, "effect": "step_up"}),
    ],
    ids=[
        "not-base64",
        "not-an-object",
        "too-long",
        "bad-method",
        "allow-effect",
        "empty-match",
        "unknown-family",
        "redact-without-fields",
        "step-up-without-age",
    ],
)
def test_a_malformed_rule_is_a_400(headers: dict[str, str]) -> None:
    with pytest.raises(InvalidInput) as refused:
        parse_constraints(headers)
    assert refused.value.status == 400
    assert refused.value.field == RULE_HEADER


@pytest.mark.parametrize("scopes", ["*", "tokens:retrieve,", "admin:all", "keys:derive"])
def test_a_scope_an_app_key_does_not_hold_is_a_400(scopes: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        parse_constraints({SCOPE_HEADER: scopes})
    assert refused.value.code == "constraint_not_narrowing"


def test_a_method_rule_judges_the_proxied_method() -> None:
    constraints = parse_constraints(_rule("json_match", {"when": {"method": ["post", "PUT"]}}))
    enforce(constraints, "proxy", "GET", "g")
    with pytest.raises(Forbidden, match="denies"):
        enforce(constraints, "proxy", "put", "g")
    with pytest.raises(Forbidden):
        enforce(constraints, "retrieve", "GET", "g")


def test_redaction_leaves_other_rules_and_bodies_alone() -> None:
    deny = parse_constraints(_rule("json_match", {"when": {}, "effect": "deny"}))
    assert redacted(deny, "POST", b'{"a":1}') == (deny, b'{"a":1}')
    redact = parse_constraints(
        _rule(
            "content_match",
            {"match": {"families": ["write"]}, "effect": "redact", "redact": {"fields": ["a"]}},
        )
    )
    assert redacted(redact, "GET", b'{"a":1}') == (redact, b'{"a":1}')  # a read: rule not firing
    kept, body = redacted(redact, "POST", b'{"a":1,"b":2}')
    assert body == b'{"b":2}'
    assert kept is not None and not kept.redaction_failed
    marked, _ = redacted(redact, "POST", b"not json")
    with pytest.raises(Forbidden) as refused:
        enforce(marked, "proxy", "POST", "g")
    assert refused.value.code == "redact_discharge_failed"
