"""The pure pieces: form translation, error placement, the session codec."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from vaultgate.server.policy import parse_policy
from vaultgate.server.portal import forms
from vaultgate.server.portal.routing import Fields
from vaultgate.server.portal.sessions import IDLE_TIMEOUT, PortalSession, SessionCodec

NOW = datetime(2030, 1, 7, 9, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("field", "expected"),
    [
        ("name", "name"),
        ("allowed_hosts[2]", "allowed_hosts"),
        ("injection.additional[0].value", "injection.additional[0].value"),
        ("injection.additional[1]", "injection.additional[1].target"),
        ("policy.ip_allow.3", "policy.ip_allow"),
        ("policy.rate_limit", "policy.rate_limit.requests"),
        ("policy.schedule.windows.0.start", "policy.schedule.windows"),
        ("something.else", None),
        (None, None),
    ],
)
def test_errors_land_on_the_nearest_field(field, expected):
    known = [
        "name",
        "allowed_hosts",
        *forms.POLICY_FIELDS,
        *(f"injection.additional[{i}].{p}" for i in range(2) for p in ("target", "name", "value")),
    ]
    assert forms.match_field(field, known) == expected


@pytest.mark.parametrize(
    ("line", "days"),
    [
        ("mon-fri 09:00-17:00", ["mon", "tue", "wed", "thu", "fri"]),
        ("sat,sun 10:00 - 12:00", ["sat", "sun"]),
        ("fri-mon 22:00-06:00", ["fri", "sat", "sun", "mon"]),
    ],
)
def test_windows_are_read_from_a_line(line, days):
    window = forms.parse_window(line)
    assert window is not None and window["days"] == days


@pytest.mark.parametrize("line", ["weekdays 09:00-17:00", "mon 9-5", "mon-xyz 09:00-10:00", ""])
def test_malformed_windows_are_refused(line):
    assert forms.parse_window(line) is None


@pytest.mark.parametrize(
    ("text", "seconds"), [("", None), ("90", 90), ("30m", 1800), ("12h", 43200), ("7d", 604800)]
)
def test_ttl(text, seconds):
    assert forms.ttl_seconds(text) == seconds


@pytest.mark.parametrize("text", ["soon", "-5", "1w", "1.5h"])
def test_bad_ttl(text):
    with pytest.raises(ValueError, match="ttl_seconds"):
        forms.ttl_seconds(text)


def _fields(values: dict[str, str | list[str]]) -> Fields:
    items: list[tuple[str, str]] = []
    for key, value in values.items():
        items += [(key, v) for v in value] if isinstance(value, list) else [(key, value)]
    return Fields(items)


def test_a_policy_survives_the_form_both_ways():
    doc = {
        "allowed_methods": ["GET"],
        "allowed_paths": ["/v1/*"],
        "ip_deny": ["10.0.0.0/8"],
        "callers": ["a", "b"],
        "rate_limit": {"requests": 5, "per_seconds": 60},
        "schedule": {
            "timezone": "UTC",
            "windows": [{"days": ["mon"], "start": "09:00", "end": "17:00"}],
        },
        "require_reason": True,
        "expires_at": "2031-01-01T00:00:00Z",
    }
    stored = parse_policy(doc).to_doc()
    again, errors = forms.policy_doc(_fields(forms.policy_values(stored)))
    assert errors == {}
    assert parse_policy(again).to_doc() == stored


def test_an_empty_policy_form_restricts_nothing():
    assert forms.policy_doc(_fields({})) == ({}, {})


def test_half_a_rate_limit_is_an_error():
    _, errors = forms.policy_doc(_fields({"policy.rate_limit.requests": "5"}))
    assert "policy.rate_limit.per_seconds" in errors  # the half that is missing


def test_echo_never_returns_a_credential():
    values = forms.echo(_fields({"name": "n", "credential.token": "sk-secret", "csrf": "t"}))
    assert values["name"] == "n"
    assert "credential.token" not in values and "csrf" not in values


def test_session_round_trip_and_idle_timeout():
    codec = SessionCodec(b"k" * 32)
    session = PortalSession.anonymous().signed_in("a@example.com", NOW)
    cookie = codec.dump(session)
    assert codec.load(cookie, NOW + timedelta(seconds=IDLE_TIMEOUT - 1)).user == "a@example.com"
    expired = codec.load(cookie, NOW + timedelta(seconds=IDLE_TIMEOUT + 1))
    assert expired.user is None and expired.expired
    assert codec.load(cookie, NOW).nonce == session.nonce
    assert SessionCodec(b"x" * 32).load(cookie, NOW).user is None  # another key: not a session
    assert "a@example.com" not in repr(codec) and session.nonce not in repr(session)


def test_csrf_token_is_bound_to_the_session():
    codec = SessionCodec(b"k" * 32)
    one, two = PortalSession.anonymous(), PortalSession.anonymous()
    assert codec.csrf_ok(one, codec.csrf_token(one))
    assert not codec.csrf_ok(two, codec.csrf_token(one))
    assert not codec.csrf_ok(one, None) and not codec.csrf_ok(one, "")


def test_sign_in_rotates_the_nonce():
    before = PortalSession.anonymous()
    assert before.signed_in("a@example.com", NOW).nonce != before.nonce
