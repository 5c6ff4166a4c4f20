"""The policy document: what is accepted, how it is normalised, and a 422 naming each bad field."""

from __future__ import annotations

import ipaddress
from datetime import UTC, datetime
from typing import Any

import pytest

from vaultgate.server.errors import Unprocessable
from vaultgate.server.policy import Policy, parse_policy

WINDOW = {"days": ["mon"], "start": "09:00", "end": "17:00"}


def schedule(**window: Any) -> dict[str, Any]:
    return {"schedule": {"timezone": "UTC", "windows": [{**WINDOW, **window}]}}


def refused(doc: object) -> Unprocessable:
    with pytest.raises(Unprocessable) as info:
        parse_policy(doc)
    assert info.value.status == 422
    assert info.value.field is not None
    assert info.value.message.startswith(info.value.field + ": ")
    return info.value


def test_empty_and_none_are_unrestricted() -> None:
    assert parse_policy({}) == Policy()
    assert parse_policy(None) == Policy()
    assert Policy().to_doc() == {}


def test_full_document_round_trips() -> None:
    doc = {
        "allowed_methods": ["get", "POST", "GET"],
        "allowed_paths": ["/v1/**", "/v2/*/items"],
        "not_before": "2026-01-01T00:00:00Z",
        "expires_at": "2026-02-01T00:00:00+01:00",
        "schedule": {
            "timezone": "America/New_York",
            "windows": [{"days": ["Fri", "mon", "fri"], "start": "22:00", "end": "02:00"}],
        },
        "ip_allow": ["10.1.2.3/8", "2001:db8::/32"],
        "ip_deny": ["10.9.0.0/16"],
        "callers": ["agent-1"],
        "rate_limit": {"requests": 5, "per_seconds": 60},
        "require_reason": True,
        "proxy_only": False,
    }
    policy = parse_policy(doc)
    assert policy.allowed_methods == ["GET", "POST"]
    assert policy.ip_allow == [
        ipaddress.ip_network("10.0.0.0/8"),
        ipaddress.ip_network("2001:db8::/32"),
    ]
    assert policy.not_before == datetime(2026, 1, 1, tzinfo=UTC)
    out = policy.to_doc()
    assert out["schedule"]["windows"][0]["days"] == ["mon", "fri"]
    assert out["ip_allow"] == ["10.0.0.0/8", "2001:db8::/32"]
    assert out["proxy_only"] is False
    assert parse_policy(out) == policy


def test_midnight_end_and_whole_day_are_accepted() -> None:
    assert parse_policy(schedule(start="00:00", end="24:00")).schedule is not None
    assert parse_policy(schedule(start="23:00", end="00:00")).schedule is not None


def test_empty_lists_mean_nothing_is_allowed_and_are_kept() -> None:
    assert parse_policy({"allowed_methods": []}).to_doc() == {"allowed_methods": []}


@pytest.mark.parametrize(
    ("doc", "field"),
    [
        ({"allowed_methodz": ["GET"]}, "policy.allowed_methodz"),
        ({"schedule": {"timezone": "UTC", "windows": [WINDOW], "x": 1}}, "policy.schedule.x"),
        ({"rate_limit": {"requests": 1, "per_seconds": 1, "burst": 3}}, "policy.rate_limit.burst"),
        ({"allowed_methods": ["FETCH"]}, "policy.allowed_methods"),
        ({"allowed_methods": "GET"}, "policy.allowed_methods"),
        ({"allowed_paths": ["v1/*"]}, "policy.allowed_paths.0"),
        ({"allowed_paths": ["/ok", "/v1/a**"]}, "policy.allowed_paths.1"),
        ({"allowed_paths": ["/v1/../admin"]}, "policy.allowed_paths.0"),
        ({"allowed_paths": ["/v1?x=1"]}, "policy.allowed_paths.0"),
        (schedule(start="25:00"), "policy.schedule.windows.0.start"),
        (schedule(start="9:00"), "policy.schedule.windows.0.start"),
        (schedule(start="24:00", end="01:00"), "policy.schedule.windows.0.start"),
        (schedule(end="24:01"), "policy.schedule.windows.0.end"),
        (schedule(start="10:00", end="10:00"), "policy.schedule.windows.0.end"),
        (schedule(days=["mon", "funday"]), "policy.schedule.windows.0.days.1"),
        (schedule(days=[]), "policy.schedule.windows.0.days"),
        ({"schedule": {"timezone": "UTC", "windows": []}}, "policy.schedule.windows"),
        (
            {"schedule": {"timezone": "Mars/Olympus", "windows": [WINDOW]}},
            "policy.schedule.timezone",
        ),
        (
            {"schedule": {"timezone": "../../etc/passwd", "windows": [WINDOW]}},
            "policy.schedule.timezone",
        ),
        ({"ip_allow": ["10.0.0.256/8"]}, "policy.ip_allow.0"),
        ({"ip_deny": ["10.0.0.0/8", "not-a-network"]}, "policy.ip_deny.1"),
        ({"ip_deny": ["2001:db8::/129"]}, "policy.ip_deny.0"),
        ({"ip_allow": [167772160]}, "policy.ip_allow.0"),
        ({"rate_limit": {"requests": 0, "per_seconds": 60}}, "policy.rate_limit.requests"),
        ({"rate_limit": {"requests": 5, "per_seconds": 0}}, "policy.rate_limit.per_seconds"),
        ({"rate_limit": {"requests": -1, "per_seconds": 60}}, "policy.rate_limit.requests"),
        ({"rate_limit": {"requests": True, "per_seconds": 60}}, "policy.rate_limit.requests"),
        ({"rate_limit": {"requests": "5", "per_seconds": 60}}, "policy.rate_limit.requests"),
        ({"not_before": "2026-01-01T00:00:00"}, "policy.not_before"),
        ({"expires_at": "2026-01-01T00:00:00"}, "policy.expires_at"),
        ({"expires_at": "yesterday"}, "policy.expires_at"),
        (
            {"not_before": "2026-01-02T00:00:00Z", "expires_at": "2026-01-02T00:00:00Z"},
            "policy.expires_at",
        ),
        ({"callers": [""]}, "policy.callers.0"),
        ({"callers": ["bad\nname"]}, "policy.callers.0"),
        ({"require_reason": "yes"}, "policy.require_reason"),
        ({"proxy_only": 1}, "policy.proxy_only"),
        ([], "policy"),
        ("allow everything", "policy"),
    ],
)
def test_bad_input_names_the_field(doc: object, field: str) -> None:
    assert refused(doc).field == field


def test_valid_neighbours_of_refused_values_pass() -> None:
    assert parse_policy(schedule(start="23:59", end="24:00")).schedule is not None
    assert parse_policy({"rate_limit": {"requests": 1, "per_seconds": 1}}).rate_limit is not None
    assert parse_policy({"allowed_paths": ["/v1/**/x", "/a*b"]}).allowed_paths is not None


def test_naive_datetime_objects_are_refused_too() -> None:
    assert refused({"not_before": datetime(2026, 1, 1)}).field == "policy.not_before"


def test_junk_megabyte_value_gives_a_short_message() -> None:
    junk = "\x00A" * 500_000
    for doc in (
        {"allowed_paths": [junk]},
        {"callers": [junk]},
        {"schedule": {"timezone": junk, "windows": [WINDOW]}},
        {"expires_at": junk},
        {"ip_allow": [junk]},
        {junk: 1},
    ):
        error = refused(doc)
        assert len(error.message) <= 200
        assert len(error.field or "") <= 100
        assert "AAAA" not in error.message
        assert "\x00" not in error.message
