"""Clones only narrow: merge_for_clone fills from the parent; check_narrower refuses wider."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from vaultgate.server.errors import Unprocessable
from vaultgate.server.policy import (
    Policy,
    check_narrower,
    clone_expiry,
    merge_for_clone,
    parse_policy,
)

PARENT_DOC: dict[str, Any] = {
    "allowed_methods": ["GET", "POST"],
    "allowed_paths": ["/v1/**"],
    "not_before": "2026-01-01T00:00:00Z",
    "expires_at": "2027-01-01T00:00:00Z",
    "schedule": {
        "timezone": "Europe/Paris",
        "windows": [
            {"days": ["mon", "tue"], "start": "08:00", "end": "20:00"},
            {"days": ["fri"], "start": "22:00", "end": "02:00"},
        ],
    },
    "ip_allow": ["10.0.0.0/8", "2001:db8::/32"],
    "ip_deny": ["10.66.0.0/16"],
    "callers": ["a", "b"],
    "rate_limit": {"requests": 10, "per_seconds": 60},
    "require_reason": True,
    "proxy_only": True,
}
PARENT = parse_policy(PARENT_DOC)


def clone(requested: dict[str, Any], parent: Policy = PARENT) -> Policy:
    child = merge_for_clone(parent, parse_policy(requested))
    check_narrower(child, parent)
    return child


def test_an_empty_request_inherits_everything() -> None:
    assert clone({}) == PARENT
    assert clone({}, parse_policy({})) == parse_policy({})


def test_requested_fields_replace_the_parents() -> None:
    child = clone({"allowed_methods": ["get"], "callers": ["a"]})
    assert child.allowed_methods == ["GET"]
    assert child.callers == ["a"]
    assert child.allowed_paths == ["/v1/**"]


@pytest.mark.parametrize(
    "requested",
    [
        {"allowed_methods": []},
        {"allowed_paths": ["/v1/models", "/v1/*/files/**", "/v1"]},
        {"not_before": "2026-06-01T00:00:00Z"},
        {"expires_at": "2026-02-01T00:00:00+01:00"},
        {
            "schedule": {
                "timezone": "Europe/Paris",
                "windows": [
                    {"days": ["mon"], "start": "09:00", "end": "17:00"},
                    {"days": ["sat"], "start": "00:00", "end": "01:00"},
                    {"days": ["fri"], "start": "23:00", "end": "00:30"},
                ],
            }
        },
        {"ip_allow": ["10.1.0.0/16", "2001:db8:1::/48"]},
        {"ip_deny": ["10.0.0.0/9", "192.0.2.0/24"]},
        {"callers": ["b"]},
        {"rate_limit": {"requests": 1, "per_seconds": 6}},
        {"rate_limit": {"requests": 10, "per_seconds": 61}},
        {"require_reason": True, "proxy_only": True},
    ],
)
def test_narrower_clones_are_accepted(requested: dict[str, Any]) -> None:
    clone(requested)


@pytest.mark.parametrize(
    ("requested", "field"),
    [
        ({"allowed_methods": ["GET", "DELETE"]}, "allowed_methods"),
        ({"allowed_paths": ["/v2/x"]}, "allowed_paths"),
        ({"allowed_paths": ["/**"]}, "allowed_paths"),
        ({"not_before": "2025-12-31T23:59:59Z"}, "not_before"),
        ({"expires_at": "2027-01-01T00:00:01Z"}, "expires_at"),
        (
            {
                "schedule": {
                    "timezone": "UTC",
                    "windows": [{"days": ["mon"], "start": "09:00", "end": "10:00"}],
                }
            },
            "schedule",
        ),
        (
            {
                "schedule": {
                    "timezone": "Europe/Paris",
                    "windows": [{"days": ["mon"], "start": "07:59", "end": "10:00"}],
                }
            },
            "schedule",
        ),
        (
            {
                "schedule": {
                    "timezone": "Europe/Paris",
                    "windows": [{"days": ["fri"], "start": "23:00", "end": "02:01"}],
                }
            },
            "schedule",
        ),
        ({"ip_allow": ["10.0.0.0/7"]}, "ip_allow"),
        ({"ip_allow": ["192.168.0.0/16"]}, "ip_allow"),
        ({"ip_allow": ["::ffff:10.0.0.0/104"]}, "ip_allow"),
        ({"ip_deny": ["10.66.1.0/24"]}, "ip_deny"),
        ({"ip_deny": []}, "ip_deny"),
        ({"callers": ["a", "c"]}, "callers"),
        ({"rate_limit": {"requests": 11, "per_seconds": 66}}, "rate_limit"),
        ({"rate_limit": {"requests": 10, "per_seconds": 59}}, "rate_limit"),
        ({"require_reason": False}, "require_reason"),
        ({"proxy_only": False}, "proxy_only"),
    ],
)
def test_wider_clones_are_refused_naming_the_field(requested: dict[str, Any], field: str) -> None:
    with pytest.raises(Unprocessable) as info:
        clone(requested)
    assert info.value.status == 422
    assert info.value.field == f"policy.{field}"
    assert info.value.message.startswith(f"policy.{field}: ")


@pytest.mark.parametrize("name", sorted(PARENT_DOC))
def test_check_narrower_alone_refuses_an_unset_field(name: str) -> None:
    child = parse_policy({k: v for k, v in PARENT_DOC.items() if k != name})
    with pytest.raises(Unprocessable) as info:
        check_narrower(child, PARENT)
    assert info.value.field == f"policy.{name}"
    check_narrower(PARENT, PARENT)


def test_anything_narrows_an_unrestricted_parent() -> None:
    check_narrower(PARENT, parse_policy({}))
    check_narrower(parse_policy({"require_reason": False}), parse_policy({"require_reason": False}))


def test_merge_keeps_the_combined_document_valid() -> None:
    parent = parse_policy({"not_before": "2026-01-01T00:00:00Z"})
    with pytest.raises(Unprocessable) as info:
        merge_for_clone(parent, parse_policy({"expires_at": "2025-01-01T00:00:00Z"}))
    assert info.value.field == "policy.expires_at"


def test_clone_expiry() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    assert clone_expiry(3600, now) == now + timedelta(hours=1)
    for bad in (0, -5, 1.5, "60", True, None, 10**12):
        with pytest.raises(Unprocessable) as info:
            clone_expiry(bad, now)
        assert info.value.field == "ttl_seconds"
