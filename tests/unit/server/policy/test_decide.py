"""decide(): every denial code reachable, the order of checks, boundaries, and the wire errors."""

from __future__ import annotations

import ipaddress
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from vaultgate.server.errors import Forbidden, RateLimited
from vaultgate.server.policy import (
    ALLOWED,
    DENIAL_STATUS,
    Decision,
    RateLimiter,
    RateState,
    RequestFacts,
    authorize,
    decide,
    denial_error,
    parse_policy,
)

NOW = datetime(2026, 6, 15, 12, 0, tzinfo=UTC)  # a Monday
FACTS = RequestFacts(
    method="POST",
    path="/v1/chat/completions",
    client_ip=ipaddress.ip_address("10.1.2.3"),
    caller="agent",
    reason="inference",
    mode="proxy",
)
LIMITED = RateState(allowed=False, retry_after_seconds=7)


def check(doc: dict[str, Any], now: datetime = NOW, **facts: Any) -> Decision:
    """decide() at ``now`` (the rate limiter says no) for FACTS with ``facts`` replaced."""
    return decide(parse_policy(doc), replace(FACTS, **facts), now, rate=LIMITED)


def test_empty_policy_allows() -> None:
    assert decide(parse_policy({}), FACTS, NOW) == ALLOWED
    assert ALLOWED.code == "allowed"


# One case per denial code: the policy, the request that reaches it, and a neighbour that passes
# (``now`` in those dicts moves the clock instead of changing a fact).
CASES: list[tuple[str, str, dict[str, Any], dict[str, Any], dict[str, Any]]] = [
    (
        "grant_not_yet_valid",
        "not_before",
        {"not_before": "2026-06-15T12:00:01Z"},
        {},
        {"now": NOW + timedelta(seconds=1)},
    ),
    (
        "grant_expired",
        "expires_at",
        {"expires_at": "2026-06-15T12:00:00Z"},
        {},
        {"now": NOW - timedelta(microseconds=1)},
    ),
    (
        "outside_schedule",
        "schedule",
        {
            "schedule": {
                "timezone": "UTC",
                "windows": [{"days": ["tue"], "start": "00:00", "end": "24:00"}],
            }
        },
        {},
        {"now": NOW + timedelta(hours=12)},
    ),
    (
        "ip_denied",
        "ip_deny",
        {"ip_deny": ["10.1.0.0/16"]},
        {},
        {"client_ip": ipaddress.ip_address("10.2.0.1")},
    ),
    (
        "ip_not_allowed",
        "ip_allow",
        {"ip_allow": ["192.168.0.0/16"]},
        {},
        {"client_ip": ipaddress.ip_address("192.168.3.4")},
    ),
    ("caller_not_allowed", "callers", {"callers": ["other"]}, {}, {"caller": "other"}),
    (
        "restricted_grant_requires_proxy",
        "proxy_only",
        {"proxy_only": True},
        {"mode": "retrieve"},
        {"mode": "transparent"},
    ),
    ("method_not_allowed", "allowed_methods", {"allowed_methods": ["GET"]}, {}, {"method": "get"}),
    (
        "path_not_allowed",
        "allowed_paths",
        {"allowed_paths": ["/v1/models/**"]},
        {},
        {"path": "/v1/models/x"},
    ),
    ("reason_required", "require_reason", {"require_reason": True}, {"reason": "  "}, {}),
    (
        "hitl_grant_requires_proxy",
        "requires_approval",
        {"requires_approval": {"methods": ["DELETE"]}},
        {"mode": "retrieve"},
        {"mode": "proxy"},
    ),
    (
        "rate_limit_exceeded",
        "rate_limit",
        {"rate_limit": {"requests": 1, "per_seconds": 1}},
        {},
        {},
    ),
]


@pytest.mark.parametrize(("code", "rule", "doc", "denied_facts", "allowed_facts"), CASES)
def test_every_denial_code_is_reachable(
    code: str,
    rule: str,
    doc: dict[str, Any],
    denied_facts: dict[str, Any],
    allowed_facts: dict[str, Any],
) -> None:
    assert check(doc, **denied_facts) == Decision(
        False, code, rule, 7 if code == "rate_limit_exceeded" else None
    )
    if code != "rate_limit_exceeded":
        assert check(doc, **allowed_facts).allowed


def test_the_cases_cover_every_denial_code() -> None:
    assert {case[0] for case in CASES} == set(DENIAL_STATUS)


def test_a_naive_now_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        decide(parse_policy({}), FACTS, NOW.replace(tzinfo=None))


def test_rate_limit_passes_when_the_limiter_allows_or_was_not_asked() -> None:
    policy = parse_policy({"rate_limit": {"requests": 1, "per_seconds": 1}})
    assert decide(policy, FACTS, NOW, rate=RateState(allowed=True)).allowed
    assert decide(policy, FACTS, NOW).allowed
    assert decide(parse_policy({}), FACTS, NOW, rate=LIMITED).allowed


def test_validity_boundaries() -> None:
    doc = {"not_before": "2026-06-15T12:00:00Z", "expires_at": "2026-06-15T13:00:00Z"}
    assert check(doc).allowed
    assert check(doc, NOW - timedelta(microseconds=1)).code == "grant_not_yet_valid"
    assert check(doc, NOW + timedelta(minutes=59, seconds=59, microseconds=999_999)).allowed
    assert check(doc, NOW + timedelta(hours=1)).code == "grant_expired"


def test_expiry_compares_instants_across_offsets() -> None:
    doc = {"expires_at": "2026-06-15T14:00:00+02:00"}  # = NOW
    assert check(doc).code == "grant_expired"
    assert check(
        doc,
        NOW - timedelta(seconds=1),
    ).allowed


def test_unknown_address_fails_closed() -> None:
    assert check({"ip_allow": ["0.0.0.0/0"]}, client_ip=None).code == "ip_not_allowed"
    assert check({"ip_deny": ["192.0.2.0/24"]}, client_ip=None) == Decision(
        False, "ip_not_allowed", "ip_deny"
    )
    assert check({}, client_ip=None).allowed


def test_ipv4_mapped_ipv6_is_judged_as_ipv4() -> None:
    mapped = ipaddress.ip_address("::ffff:10.1.2.3")
    assert check({"ip_deny": ["10.0.0.0/8"]}, client_ip=mapped).code == "ip_denied"
    assert check({"ip_allow": ["10.0.0.0/8"]}, client_ip=mapped).allowed


def test_ipv6_networks() -> None:
    doc = {"ip_allow": ["2001:db8::/32"]}
    assert check(doc, client_ip=ipaddress.ip_address("2001:db8::1")).allowed
    assert check(doc, client_ip=ipaddress.ip_address("2001:db9::1")).code == "ip_not_allowed"
    assert check(doc).code == "ip_not_allowed"  # an IPv4 caller is never in an IPv6 network


def test_deny_wins_over_allow() -> None:
    doc = {"ip_allow": ["10.0.0.0/8"], "ip_deny": ["10.1.2.3/32"]}
    assert check(doc).code == "ip_denied"


def test_missing_caller_or_reason_is_denied() -> None:
    assert check({"callers": ["agent"]}, caller=None).code == "caller_not_allowed"
    assert check({"require_reason": True}, reason=None).code == "reason_required"
    assert check({"require_reason": False}, reason=None).allowed


def test_proxy_only_allows_both_server_side_modes() -> None:
    for mode in ("proxy", "transparent"):
        assert check({"proxy_only": True}, mode=mode).allowed


def test_order_of_checks() -> None:
    everything = {
        "expires_at": "2026-01-01T00:00:00Z",
        "ip_allow": ["192.0.2.0/24"],
        "callers": ["x"],
        "proxy_only": True,
        "allowed_methods": ["GET"],
        "allowed_paths": ["/x"],
        "require_reason": True,
        "rate_limit": {"requests": 1, "per_seconds": 1},
    }
    facts = {"mode": "retrieve", "reason": None}
    order = [
        "expires_at",
        "ip_allow",
        "callers",
        "proxy_only",
        "allowed_methods",
        "allowed_paths",
        "require_reason",
        "rate_limit",
    ]
    seen = []
    doc = dict(everything)
    for rule in order:
        decision = check(doc, **facts)
        seen.append(decision.rule)
        del doc[rule]
    assert seen == order
    assert check(doc, **facts).allowed


def test_authorize_counts_only_requests_allowed_by_everything_else() -> None:
    limiter = RateLimiter()
    policy = parse_policy(
        {"rate_limit": {"requests": 1, "per_seconds": 60}, "allowed_methods": ["POST"]}
    )
    for _ in range(3):
        denied = authorize(policy, replace(FACTS, method="GET"), NOW, key="g1", limiter=limiter)
        assert denied.code == "method_not_allowed"
    assert authorize(policy, FACTS, NOW, key="g1", limiter=limiter).allowed
    limited = authorize(policy, FACTS, NOW, key="g1", limiter=limiter)
    assert limited == Decision(False, "rate_limit_exceeded", "rate_limit", 60)
    assert authorize(policy, FACTS, NOW, key="g2", limiter=limiter).allowed
    assert authorize(policy, FACTS, NOW + timedelta(seconds=60), key="g1", limiter=limiter).allowed


def test_authorize_without_rate_limit_keeps_no_state() -> None:
    limiter = RateLimiter()
    assert authorize(parse_policy({}), FACTS, NOW, key="g", limiter=limiter).allowed
    assert len(limiter) == 0


def test_denial_errors() -> None:
    for code, status in DENIAL_STATUS.items():
        error = denial_error(Decision(False, code, "rule", 3))
        assert (error.status, error.code) == (status, code)
        assert error.envelope()["detail"]["error"] == code
    forbidden = denial_error(Decision(False, "ip_denied", "ip_deny"))
    assert isinstance(forbidden, Forbidden)
    limited = denial_error(Decision(False, "rate_limit_exceeded", "rate_limit", 12))
    assert isinstance(limited, RateLimited)
    assert limited.headers["Retry-After"] == "12"
    override = denial_error(Decision(False, "rate_limit_exceeded", "rate_limit", 12), retry_after=5)
    assert override.headers["Retry-After"] == "5"


def test_an_allowed_decision_is_not_an_error() -> None:
    with pytest.raises(ValueError, match="allowed"):
        denial_error(ALLOWED)


@pytest.mark.parametrize(
    ("callers", "caller", "agent", "allowed"),
    [
        (["agent:deployer"], None, "deployer", True),
        (["agent:deployer"], "agent:deployer", None, False),  # the claim alone never passes
        (["agent:deployer"], "agent:deployer", "other", False),
        (["agent:deployer"], "deployer", None, False),
        (["agent:deployer", "ci"], "ci", None, True),
        (["agent:deployer", "ci"], "ci", "other", True),  # a named caller still passes
        (["ci"], "agent:ci", "ci", False),  # a plain entry is the caller text, not an agent
    ],
)
def test_callers_name_agents_matched_against_the_verified_agent_only(
    callers: list[str], caller: str | None, agent: str | None, allowed: bool
) -> None:
    decision = check({"callers": callers}, caller=caller, agent=agent)
    assert decision.allowed is allowed
    assert allowed or decision.code == "caller_not_allowed"
