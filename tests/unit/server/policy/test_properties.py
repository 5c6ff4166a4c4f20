"""Property tests: decide() against a plain reference evaluation, and clones never widen.

The reference below is written from the policy document's text, not from the implementation:
wall-clock day/minute arithmetic instead of week intervals, a recursive segment matcher instead of
regular expressions.
"""

from __future__ import annotations

import ipaddress
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vaultgate.server.errors import Unprocessable
from vaultgate.server.policy import (
    Policy,
    RateState,
    RequestFacts,
    check_narrower,
    decide,
    merge_for_clone,
    parse_policy,
)

DAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
ZONES = ["UTC", "America/New_York", "Europe/London"]
NETWORKS = [
    "0.0.0.0/0",
    "10.0.0.0/8",
    "10.1.0.0/16",
    "10.1.2.0/24",
    "192.168.0.0/16",
    "2001:db8::/32",
    "2001:db8:1::/48",
    "::/0",
]
ADDRESSES = ["10.1.2.3", "10.2.0.1", "192.168.1.1", "8.8.8.8", "2001:db8:1::1", "::ffff:10.1.2.3"]
GLOB_SEGMENTS = ["a", "b", "ab", "*", "a*", "**"]
PATH_SEGMENTS = ["a", "b", "ab", "ba", ""]
CALLERS = ["x", "y", "z"]
# Around both 2026 daylight-saving changes in New York and London.
BASES = [
    datetime(2026, 3, 7, tzinfo=UTC),
    datetime(2026, 3, 28, tzinfo=UTC),
    datetime(2026, 10, 24, tzinfo=UTC),
    datetime(2026, 10, 31, tzinfo=UTC),
]

instants = st.builds(
    lambda base, minutes: base + timedelta(minutes=minutes),
    st.sampled_from(BASES),
    st.integers(0, 3 * 24 * 60),
)
hhmm = st.builds(lambda h, m: f"{h:02d}:{m:02d}", st.integers(0, 23), st.sampled_from([0, 30, 59]))
globs = st.lists(st.sampled_from(GLOB_SEGMENTS), max_size=3).map(lambda s: "/" + "/".join(s))


@st.composite
def windows(draw: st.DrawFn) -> dict[str, Any]:
    start = draw(hhmm)
    end = draw(hhmm | st.just("24:00"))
    if end == start:
        end = "24:00"
    days = draw(st.lists(st.sampled_from(DAYS), min_size=1, max_size=7))
    return {"days": days, "start": start, "end": end}


def maybe(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.none() | strategy


@st.composite
def policy_docs(draw: st.DrawFn) -> dict[str, Any]:
    doc = {
        "allowed_methods": draw(maybe(st.lists(st.sampled_from(METHODS), max_size=4))),
        "allowed_paths": draw(maybe(st.lists(globs, max_size=3))),
        "not_before": draw(maybe(instants)),
        "expires_at": draw(maybe(instants)),
        "schedule": draw(
            maybe(
                st.fixed_dictionaries(
                    {
                        "timezone": st.sampled_from(ZONES),
                        "windows": st.lists(windows(), min_size=1, max_size=3),
                    }
                )
            )
        ),
        "ip_allow": draw(maybe(st.lists(st.sampled_from(NETWORKS), max_size=3))),
        "ip_deny": draw(maybe(st.lists(st.sampled_from(NETWORKS), max_size=2))),
        "callers": draw(maybe(st.lists(st.sampled_from(CALLERS), max_size=2))),
        "rate_limit": draw(
            maybe(
                st.fixed_dictionaries(
                    {"requests": st.integers(1, 5), "per_seconds": st.integers(1, 9)}
                )
            )
        ),
        "require_reason": draw(maybe(st.booleans())),
        "proxy_only": draw(maybe(st.booleans())),
    }
    if doc["not_before"] and doc["expires_at"] and doc["not_before"] >= doc["expires_at"]:
        doc["expires_at"] = None
    return {
        k: (v.isoformat() if isinstance(v, datetime) else v)
        for k, v in doc.items()
        if v is not None
    }


facts_strategy = st.builds(
    RequestFacts,
    method=st.sampled_from([*METHODS, "get", "post"]),
    path=st.lists(st.sampled_from(PATH_SEGMENTS), max_size=4).map(lambda s: "/" + "/".join(s)),
    client_ip=maybe(st.sampled_from(ADDRESSES).map(ipaddress.ip_address)),
    caller=maybe(st.sampled_from(CALLERS)),
    reason=maybe(st.sampled_from(["", " ", "why"])),
    mode=st.sampled_from(["retrieve", "proxy", "transparent"]),
)
rates = maybe(st.builds(RateState, st.booleans(), st.integers(1, 9)))


# ---- the reference -------------------------------------------------------------------------


def ref_segment(pattern: str, text: str) -> bool:
    if not pattern:
        return not text
    if pattern[0] == "*":
        return any(ref_segment(pattern[1:], text[i:]) for i in range(len(text) + 1))
    return bool(text) and text[0] == pattern[0] and ref_segment(pattern[1:], text[1:])


def ref_glob(pattern: list[str], path: list[str]) -> bool:
    if not pattern:
        return not path
    if pattern[0] == "**":
        return any(ref_glob(pattern[1:], path[i:]) for i in range(len(path) + 1))
    return bool(path) and ref_segment(pattern[0], path[0]) and ref_glob(pattern[1:], path[1:])


def ref_minutes(text: str) -> int:
    hours, minutes = text.split(":")
    return int(hours) * 60 + int(minutes)


def ref_in_schedule(schedule: dict[str, Any], now: datetime) -> bool:
    local = now.astimezone(ZoneInfo(schedule["timezone"]))
    today = DAYS[local.weekday()]
    yesterday = DAYS[(local.weekday() - 1) % 7]
    minute = local.hour * 60 + local.minute
    for w in schedule["windows"]:
        start, end = ref_minutes(w["start"]), ref_minutes(w["end"])
        if start < end and today in w["days"] and start <= minute < end:
            return True
        if start > end and today in w["days"] and minute >= start:
            return True
        if start > end and yesterday in w["days"] and minute < end:
            return True
    return False


def ref_in_networks(ip: ipaddress.IPv4Address | ipaddress.IPv6Address, cidrs: list[str]) -> bool:
    return any(ip in net for net in map(ipaddress.ip_network, cidrs) if ip.version == net.version)


def reference(
    doc: dict[str, Any], f: RequestFacts, now: datetime, rate: RateState | None
) -> tuple[str, str]:
    """(code, rule) from the policy's plain-language meaning, checked in the documented order."""
    if "not_before" in doc and now < datetime.fromisoformat(doc["not_before"]):
        return "grant_not_yet_valid", "not_before"
    if "expires_at" in doc and now >= datetime.fromisoformat(doc["expires_at"]):
        return "grant_expired", "expires_at"
    if "schedule" in doc and not ref_in_schedule(doc["schedule"], now):
        return "outside_schedule", "schedule"
    if "ip_allow" in doc or "ip_deny" in doc:
        ip = f.client_ip
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
            ip = ip.ipv4_mapped
        if ip is None:
            return "ip_not_allowed", "ip_allow" if "ip_allow" in doc else "ip_deny"
        if ref_in_networks(ip, doc.get("ip_deny", [])):
            return "ip_denied", "ip_deny"
        if "ip_allow" in doc and not ref_in_networks(ip, doc["ip_allow"]):
            return "ip_not_allowed", "ip_allow"
    if "callers" in doc and f.caller not in doc["callers"]:
        return "caller_not_allowed", "callers"
    if doc.get("proxy_only") and f.mode == "retrieve":
        return "restricted_grant_requires_proxy", "proxy_only"
    if "allowed_methods" in doc and f.method.upper() not in doc["allowed_methods"]:
        return "method_not_allowed", "allowed_methods"
    path = f.path.split("/")[1:]
    if "allowed_paths" in doc and not any(
        ref_glob(g.split("/")[1:], path) for g in doc["allowed_paths"]
    ):
        return "path_not_allowed", "allowed_paths"
    if doc.get("require_reason") and not (f.reason or "").strip():
        return "reason_required", "require_reason"
    if "rate_limit" in doc and rate is not None and not rate.allowed:
        return "rate_limit_exceeded", "rate_limit"
    return "allowed", "policy"


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(doc=policy_docs(), facts=facts_strategy, now=instants, rate=rates)
def test_decide_agrees_with_the_reference(
    doc: dict[str, Any], facts: RequestFacts, now: datetime, rate: RateState | None
) -> None:
    decision = decide(parse_policy(doc), facts, now, rate=rate)
    assert (decision.code, decision.rule) == reference(doc, facts, now, rate)
    assert decision.allowed == (decision.code == "allowed")


# ---- clones --------------------------------------------------------------------------------


def narrowed_doc(draw: st.DrawFn, parent: dict[str, Any]) -> dict[str, Any]:
    """A request biased towards narrowing ``parent``, with some fields drawn at random."""
    anything = draw(policy_docs())
    out: dict[str, Any] = {}
    for key, value in parent.items():
        choice = draw(st.sampled_from(["inherit", "narrow", "random"]))
        if choice == "random" and key in anything:
            out[key] = anything[key]
        elif choice == "narrow" and isinstance(value, list) and key != "ip_deny":
            out[key] = draw(st.lists(st.sampled_from(value), max_size=len(value))) if value else []
        elif choice == "narrow" and key == "ip_deny":
            out[key] = [*value, *draw(st.lists(st.sampled_from(NETWORKS), max_size=2))]
        elif choice == "narrow" and key == "schedule":
            out[key] = {**value, "windows": [draw(windows())]}
    for key in anything.keys() - parent.keys():
        if draw(st.booleans()):
            out[key] = anything[key]
    return out


@st.composite
def parent_and_request(draw: st.DrawFn) -> tuple[dict[str, Any], dict[str, Any]]:
    parent = draw(policy_docs())
    return parent, narrowed_doc(draw, parent)


def try_clone(parent: Policy, requested: dict[str, Any]) -> Policy | None:
    try:
        child = merge_for_clone(parent, parse_policy(requested))
        check_narrower(child, parent)
    except Unprocessable:
        return None
    return child


@settings(max_examples=250, suppress_health_check=[HealthCheck.too_slow])
@given(
    pair=parent_and_request(),
    requests=st.lists(st.tuples(facts_strategy, instants, rates), min_size=1, max_size=8),
)
def test_no_accepted_clone_allows_what_its_parent_denies(
    pair: tuple[dict[str, Any], dict[str, Any]],
    requests: list[tuple[RequestFacts, datetime, RateState | None]],
) -> None:
    parent = parse_policy(pair[0])
    child = try_clone(parent, pair[1])
    if child is None:
        return
    for facts, now, rate in requests:
        if not decide(parent, facts, now, rate=rate).allowed:
            assert not decide(child, facts, now, rate=rate).allowed


@settings(max_examples=200)
@given(doc=policy_docs())
def test_a_clone_that_asks_for_nothing_is_its_parent(doc: dict[str, Any]) -> None:
    parent = parse_policy(doc)
    assert try_clone(parent, {}) == parent


def test_the_clone_strategy_mostly_produces_accepted_clones() -> None:
    """Guards the property above against passing vacuously because every clone was refused."""
    outcomes: list[bool] = []

    @settings(max_examples=200, database=None)
    @given(pair=parent_and_request())
    def sample(pair: tuple[dict[str, Any], dict[str, Any]]) -> None:
        outcomes.append(try_clone(parse_policy(pair[0]), pair[1]) is not None)

    sample()
    assert sum(outcomes) >= len(outcomes) // 4
