"""``requires_approval``: validation, which calls it holds, and that a clone may only tighten it."""

from __future__ import annotations

from typing import Any

import pytest

from vaultgate.server.errors import Unprocessable
from vaultgate.server.policy import check_narrower, merge_for_clone, parse_policy


def rule(**fields: Any) -> dict[str, Any]:
    return {"requires_approval": fields}


def test_defaults_hold_every_call_for_one_approval_within_an_hour() -> None:
    held = parse_policy(rule()).requires_approval
    assert held is not None
    assert (held.methods, held.paths, held.approvals, held.ttl_seconds) == (None, None, 1, 3600)
    assert held.covers("GET", "/anything")


def test_methods_and_paths_narrow_what_is_held() -> None:
    held = parse_policy(rule(methods=["post", "delete"], paths=["/v1/payments/**"]))
    assert held.requires_approval is not None
    assert held.requires_approval.covers("POST", "/v1/payments/42")
    assert not held.requires_approval.covers("GET", "/v1/payments/42")
    assert not held.requires_approval.covers("POST", "/v1/users")


def test_approvers_are_normalised_and_counted_once() -> None:
    held = parse_policy(rule(approvers=["Alice@Example.com", "alice@example.com", "b@x.io"]))
    assert held.requires_approval is not None
    assert held.requires_approval.approvers == ["alice@example.com", "b@x.io"]


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"approvals": 0}, "policy.requires_approval.approvals"),
        ({"approvals": 11}, "policy.requires_approval.approvals"),
        ({"ttl_seconds": 0}, "policy.requires_approval.ttl_seconds"),
        ({"ttl_seconds": "60"}, "policy.requires_approval.ttl_seconds"),
        ({"methods": ["FETCH"]}, "policy.requires_approval.methods"),
        ({"paths": ["no-slash"]}, "policy.requires_approval.paths.0"),
        ({"approvers": ["not an email"]}, "policy.requires_approval.approvers.0"),
        ({"group": "Bad Group!"}, "policy.requires_approval.group"),
        ({"who": "me"}, "policy.requires_approval.who"),
    ],
)
def test_a_bad_rule_is_refused_naming_its_field(fields: dict[str, Any], field: str) -> None:
    with pytest.raises(Unprocessable) as caught:
        parse_policy(rule(**fields))
    assert caught.value.field == field


PARENT = parse_policy(
    rule(methods=["POST"], paths=["/v1/pay/**"], approvers=["a@x.io", "b@x.io"], approvals=1)
)


@pytest.mark.parametrize(
    ("child", "problem"),
    [
        ({}, "must be set"),
        (rule(methods=["GET"], paths=["/v1/pay/**"], approvers=["a@x.io"]), "every method"),
        (rule(methods=["POST"], paths=["/v1/pay/x"], approvers=["a@x.io"]), "every path"),
        (rule(methods=["POST"], paths=["/v1/pay/**"], approvers=["c@x.io"]), "approvers"),
        (rule(methods=["POST"], paths=["/v1/pay/**"]), "approvers"),
        (
            rule(methods=["POST"], paths=["/v1/pay/**"], approvers=["a@x.io"], ttl_seconds=7200),
            "longer",
        ),
    ],
)
def test_a_clone_may_not_loosen_approval(child: dict[str, Any], problem: str) -> None:
    merged = parse_policy(child) if child else parse_policy({"allowed_methods": ["POST"]})
    with pytest.raises(Unprocessable, match=problem) as caught:
        check_narrower(merged, PARENT)
    assert caught.value.field == "policy.requires_approval"


def test_a_clone_may_tighten_approval_and_inherits_it_when_silent() -> None:
    tighter = parse_policy(
        rule(paths=["/v1/**"], approvers=["a@x.io"], approvals=1, ttl_seconds=60)
    )
    check_narrower(tighter, PARENT)
    inherited = merge_for_clone(PARENT, parse_policy({"require_reason": True}))
    check_narrower(inherited, PARENT)
    assert inherited.requires_approval == PARENT.requires_approval


def test_a_clone_needing_fewer_approvals_is_refused() -> None:
    two = parse_policy(rule(approvals=2))
    with pytest.raises(Unprocessable, match="fewer approvals"):
        check_narrower(parse_policy(rule(approvals=1)), two)
    check_narrower(parse_policy(rule(approvals=3)), two)


def test_a_group_must_be_kept() -> None:
    grouped = parse_policy(rule(group="payments"))
    with pytest.raises(Unprocessable, match="group"):
        check_narrower(parse_policy(rule(approvers=["a@x.io"])), grouped)
    check_narrower(parse_policy(rule(group="payments", approvals=2)), grouped)
