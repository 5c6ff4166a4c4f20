"""Property tests: decide() against a plain reference evaluation, and clones never widen.

The reference below is written from the policy document's text, not from the implementation:
wall-clock day/minute arithmetic instead of week intervals, a recursive segment matcher instead of
regular expressions.
"""

from __future__ import annotations

import ipaddress
import random
from collections.abc import Iterator
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
from vaultgate.server.policy.decide import Mode

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


FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "allowed_methods": st.lists(st.sampled_from(METHODS), max_size=4),
    "allowed_paths": st.lists(globs, max_size=3),
    "not_before": instants,
    "expires_at": instants,
    "schedule": st.fixed_dictionaries(
        {"timezone": st.sampled_from(ZONES), "windows": st.lists(windows(), min_size=1, max_size=3)}
    ),
    "ip_allow": st.lists(st.sampled_from(NETWORKS), max_size=3),
    "ip_deny": st.lists(st.sampled_from(NETWORKS), max_size=2),
    "callers": st.lists(st.sampled_from(CALLERS), max_size=2),
    "rate_limit": st.fixed_dictionaries(
        {"requests": st.integers(1, 5), "per_seconds": st.integers(1, 9)}
    ),
    "require_reason": st.booleans(),
    "proxy_only": st.booleans(),
}


def as_doc(values: dict[str, Any]) -> dict[str, Any]:
    doc = {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in values.items()}
    if "not_before" in doc and "expires_at" in doc and doc["not_before"] >= doc["expires_at"]:
        del doc["expires_at"]
    return doc


@st.composite
def policy_docs(draw: st.DrawFn, max_fields: int = len(FIELDS)) -> dict[str, Any]:
    """Documents with a few fields set, so that every check is often the one that decides."""
    keys = draw(st.sets(st.sampled_from(sorted(FIELDS)), max_size=max_fields))
    return as_doc({key: draw(FIELDS[key]) for key in sorted(keys)})


PATHS = ["/", "/a", "/b", "/ab", "/ba", "/a/", "/a/b", "/a/ab", "/b/a/b", "/ab/ba/a", "/a/a/a"]
MODES: list[Mode] = ["retrieve", "proxy", "transparent"]
RATES = [None, RateState(True), RateState(False, 3)]


def sample_requests(
    rng: random.Random, docs: list[dict[str, Any]], count: int
) -> Iterator[tuple[RequestFacts, datetime, RateState | None]]:
    """Requests spread over every dimension policy looks at, many of them at the documents' own
    validity boundaries, so that a field a clone widened is often the one that decides."""
    edges = [
        datetime.fromisoformat(doc[key]) + timedelta(microseconds=delta)
        for doc in docs
        for key in ("not_before", "expires_at")
        if key in doc
        for delta in (-1, 0)
    ]
    for _ in range(count):
        if edges and rng.random() < 0.2:
            now = rng.choice(edges)
        else:
            now = rng.choice(BASES) + timedelta(minutes=rng.randrange(3 * 24 * 60))
        ip = rng.choice([None, *ADDRESSES])
        facts = RequestFacts(
            method=rng.choice([*METHODS, "get"]),
            path=rng.choice(PATHS),
            client_ip=None if ip is None else ipaddress.ip_address(ip),
            caller=rng.choice([None, *CALLERS]),
            reason=rng.choice([None, "", " ", "why"]),
            mode=rng.choice(MODES),
        )
        yield facts, now, rng.choice(RATES)


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


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(doc=policy_docs(max_fields=4), rng=st.randoms(use_true_random=False))
def test_decide_agrees_with_the_reference(doc: dict[str, Any], rng: random.Random) -> None:
    policy = parse_policy(doc)
    for facts, now, rate in sample_requests(rng, [doc], 100):
        decision = decide(policy, facts, now, rate=rate)
        expected = reference(doc, facts, now, rate)
        assert (decision.code, decision.rule) == expected, (facts, now, rate)
        assert decision.allowed == (decision.code == "allowed")


# ---- clones --------------------------------------------------------------------------------


def narrowed_doc(draw: st.DrawFn, parent: dict[str, Any]) -> dict[str, Any]:
    """A clone request: one or two fields drawn at random (the attempts to widen), the others
    inherited or narrowed, so that the clone stays close enough to its parent for a widened
    field to be the one that decides."""
    # Attempts aim mostly at the parent's own fields: a field the parent leaves open cannot widen.
    attempts = draw(st.sets(st.sampled_from(sorted(parent) or sorted(FIELDS)), max_size=2))
    out: dict[str, Any] = {}
    for key in sorted(FIELDS):
        value = parent.get(key)
        if key in attempts:
            out[key] = draw(FIELDS[key])
        elif value is None or draw(st.booleans()):
            continue  # inherit
        elif key == "ip_deny":
            out[key] = [*value, *draw(st.lists(st.sampled_from(NETWORKS), max_size=2))]
        elif isinstance(value, list):
            out[key] = draw(st.lists(st.sampled_from(value), max_size=len(value))) if value else []
        elif key == "schedule":
            # A parent window on fewer days, or a random one; sometimes in another zone.
            window = draw(st.sampled_from(value["windows"]))
            days = st.lists(st.sampled_from(window["days"]), min_size=1)
            window = draw(st.just({**window, "days": draw(days)}) | windows())
            zone = draw(st.sampled_from([value["timezone"], *ZONES]))
            out[key] = {"timezone": zone, "windows": [window]}
    return as_doc(out)


@st.composite
def parent_and_request(draw: st.DrawFn) -> tuple[dict[str, Any], dict[str, Any]]:
    # Half the parents restrict one field only, so that field is the one a request meets.
    if draw(st.booleans()):
        key = draw(st.sampled_from(sorted(FIELDS)))
        parent = as_doc({key: draw(FIELDS[key])})
    else:
        parent = draw(policy_docs(max_fields=4))
    return parent, narrowed_doc(draw, parent)


def try_clone(parent: Policy, requested: dict[str, Any]) -> Policy | None:
    try:
        child = merge_for_clone(parent, parse_policy(requested))
        check_narrower(child, parent)
    except Unprocessable:
        return None
    return child


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pair=parent_and_request(), rng=st.randoms(use_true_random=False))
def test_no_accepted_clone_allows_what_its_parent_denies(
    pair: tuple[dict[str, Any], dict[str, Any]], rng: random.Random
) -> None:
    parent = parse_policy(pair[0])
    child = try_clone(parent, pair[1])
    if child is None:
        return
    for facts, now, rate in sample_requests(rng, list(pair), 200):
        if not decide(parent, facts, now, rate=rate).allowed:
            assert not decide(child, facts, now, rate=rate).allowed, (facts, now, rate)


@settings(max_examples=200, deadline=None)
@given(doc=policy_docs())
def test_a_clone_that_asks_for_nothing_is_its_parent(doc: dict[str, Any]) -> None:
    parent = parse_policy(doc)
    assert try_clone(parent, {}) == parent


def test_the_clone_strategy_mostly_produces_accepted_clones() -> None:
    """Guards the property above against passing vacuously because every clone was refused."""
    outcomes: list[bool] = []

    @settings(max_examples=200, deadline=None, database=None)
    @given(pair=parent_and_request())
    def sample(pair: tuple[dict[str, Any], dict[str, Any]]) -> None:
        outcomes.append(try_clone(parse_policy(pair[0]), pair[1]) is not None)

    sample()
    assert sum(outcomes) >= len(outcomes) // 4
