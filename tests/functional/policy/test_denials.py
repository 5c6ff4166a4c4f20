"""Every denial reason, through every client: our SDK (async and sync), the official
``alter_sdk`` client and the transparent proxy. Each case has an allowed twin (a grant or a
request differing only in the rule at stake) that goes through, so a denial cannot pass by
refusing everything. A denied request reaches nothing upstream and is audited with its code.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import alter_sdk
import pytest

import vaultgate
from support import Upstream, Vault
from support.audit import wait_for_events, wait_until
from support.channels import CHANNELS, Call, Channel, Result, channel_ids
from support.injection import Tenant

TOKEN = "canary-policy-Zr8Kq2"
PolicyAt = Callable[[datetime], dict[str, Any]]

# code -> (status, our class, the official client's class), per protocol section 5.2.
EXPECTED: dict[str, tuple[int, type[Exception], type[Exception]]] = {
    "grant_expired": (403, vaultgate.GrantExpiredError, alter_sdk.GrantExpiredError),
    "grant_revoked": (403, vaultgate.GrantRevokedError, alter_sdk.GrantRevokedError),
    "grant_not_found": (404, vaultgate.GrantNotFoundError, alter_sdk.GrantNotFoundError),
    "blocked_destination": (
        422,
        vaultgate.BlockedDestinationError,
        alter_sdk.BlockedDestinationError,
    ),
    "rate_limit_exceeded": (429, vaultgate.RateLimitError, alter_sdk.RateLimitError),
    "restricted_grant_requires_proxy": (
        403,
        vaultgate.RestrictedGrantRequiresProxyError,
        alter_sdk.RestrictedGrantRequiresProxyError,
    ),
}
POLICY_CODES = (
    "grant_not_yet_valid",
    "outside_schedule",
    "ip_not_allowed",
    "ip_denied",
    "caller_not_allowed",
    "method_not_allowed",
    "path_not_allowed",
    "reason_required",
)
for _code in POLICY_CODES:
    EXPECTED[_code] = (403, vaultgate.PolicyViolationError, alter_sdk.PolicyViolationError)


def assert_denied(result: Result, channel: Channel, code: str) -> None:
    status, ours, theirs = EXPECTED[code]
    assert result.status == status, result
    if channel.name == "transparent":
        assert result.code == code
        return
    expected = theirs if channel.official else ours
    assert isinstance(result.error, expected), repr(result.error)
    if channel.official:
        if expected is alter_sdk.PolicyViolationError:
            assert result.error.policy_error == code  # type: ignore[attr-defined]
    else:
        assert result.code == code
    assert TOKEN not in str(result.error)


def bearer(policy: dict[str, Any] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"credential_type": "bearer", "credential": {"token": TOKEN}}
    if policy is not None:
        body["policy"] = policy
    return body


def _iso(when: datetime) -> str:
    return when.isoformat()


def _window(zone: str, start: datetime, end: datetime) -> dict[str, Any]:
    """Every day, from ``start`` to ``end`` in ``zone``'s wall-clock time (may cross midnight)."""
    local = ZoneInfo(zone)
    return {
        "schedule": {
            "timezone": zone,
            "windows": [
                {
                    "days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"],
                    "start": start.astimezone(local).strftime("%H:%M"),
                    "end": end.astimezone(local).strftime("%H:%M"),
                }
            ],
        }
    }


@dataclass(frozen=True)
class Case:
    id: str
    code: str
    denied_policy: PolicyAt
    allowed_policy: PolicyAt
    denied_call: dict[str, Any] = field(default_factory=dict)
    allowed_call: dict[str, Any] = field(default_factory=dict)


def _same(policy: dict[str, Any]) -> PolicyAt:
    return lambda _now: policy


H = timedelta(hours=1)
CASES = (
    Case(
        "methods",
        "method_not_allowed",
        _same({"allowed_methods": ["GET"]}),
        _same({"allowed_methods": ["GET"]}),
        {"method": "DELETE"},
    ),
    Case(
        "paths",
        "path_not_allowed",
        _same({"allowed_paths": ["/v1/**"]}),
        _same({"allowed_paths": ["/v1/**"]}),
        {"path": "/admin/users"},
    ),
    Case(
        "not_before",
        "grant_not_yet_valid",
        lambda now: {"not_before": _iso(now + H)},
        lambda now: {"not_before": _iso(now - H)},
    ),
    Case(
        "expires_at",
        "grant_expired",
        lambda now: {"expires_at": _iso(now - timedelta(minutes=1))},
        lambda now: {"expires_at": _iso(now + H)},
    ),
    Case(
        "schedule",
        "outside_schedule",
        # Two hours from now for an hour: the test ends long before the window opens.
        lambda now: _window("UTC", now + 2 * H, now + 3 * H),
        lambda now: _window("America/New_York", now - H, now + H),
    ),
    Case(
        "ip_allow",
        "ip_not_allowed",
        _same({"ip_allow": ["10.0.0.0/8", "2001:db8::/32"]}),
        _same({"ip_allow": ["127.0.0.0/8"]}),
    ),
    Case(
        "ip_deny",
        "ip_denied",
        _same({"ip_deny": ["127.0.0.1/32"]}),
        _same({"ip_deny": ["10.0.0.0/8"]}),
    ),
    Case(
        "callers",
        "caller_not_allowed",
        _same({"callers": ["billing-agent"]}),
        _same({"callers": ["billing-agent"]}),
        {"caller": "intruder"},
        {"caller": "billing-agent"},
    ),
    Case(
        "callers-anonymous",
        "caller_not_allowed",
        _same({"callers": ["billing-agent"]}),
        _same({"callers": ["billing-agent"]}),
        {"caller": None},
        {"caller": "billing-agent"},
    ),
    Case(
        "require_reason",
        "reason_required",
        _same({"require_reason": True}),
        _same({"require_reason": True}),
        {"reason": None},
        {"reason": "monthly invoice run"},
    ),
)


def grant_suffix() -> str:
    return uuid.uuid4().hex[:8]


def make_call(vault: Vault, tenant: Tenant, upstream: Upstream, grant: str, **kw: Any) -> Call:
    path = kw.pop("path", "/v1/things")
    base = Call(vault, tenant.key, grant, f"{upstream.origin}{path}", reason="tests")
    return replace(base, **kw)


@pytest.mark.parametrize("channel", CHANNELS, ids=channel_ids())
@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
async def test_each_policy_denial_is_typed_in_every_client(
    case: Case, channel: Channel, shared_vault: Vault, tenant: Tenant, origin: Upstream
) -> None:
    now = datetime.now(UTC)
    denied = tenant.store(bearer(case.denied_policy(now)), [origin.origin])
    allowed = tenant.store(bearer(case.allowed_policy(now)), [origin.origin])

    result = await channel.run(make_call(shared_vault, tenant, origin, denied, **case.denied_call))
    assert_denied(result, channel, case.code)
    assert origin.requests == [], "a denied request reached the upstream"

    ok = await channel.run(make_call(shared_vault, tenant, origin, allowed, **case.allowed_call))
    assert ok.ok and ok.status == 200, ok
    assert origin.last().headers["authorization"] == f"Bearer {TOKEN}"

    [event] = wait_for_events(shared_vault, 1, grant_id=denied, event="grant:deny")
    assert (event["event"], event["outcome"], event["code"]) == ("grant:deny", "denied", case.code)
    assert event["mode"] == channel.mode
    assert event["source_ip"] == "127.0.0.1"


@pytest.mark.parametrize("channel", CHANNELS, ids=channel_ids())
async def test_rate_limit_answers_429_with_retry_after(
    channel: Channel, shared_vault: Vault, tenant: Tenant, origin: Upstream
) -> None:
    grant = tenant.store(
        bearer({"rate_limit": {"requests": 2, "per_seconds": 3600}}), [origin.origin]
    )
    call = make_call(shared_vault, tenant, origin, grant)
    assert (await channel.run(call)).ok
    assert (await channel.run(call)).ok
    refused = await channel.run(call)
    assert_denied(refused, channel, "rate_limit_exceeded")
    # A sliding window: a place frees when the first use leaves it, 3600 s after it was made
    # (give or take the test's own duration).
    assert refused.retry_after is not None and 3500 <= refused.retry_after <= 3600
    assert len(origin.requests) == 2
    # Another grant of the same secret's app has its own bucket.
    other = tenant.store(
        bearer({"rate_limit": {"requests": 1, "per_seconds": 3600}}), [origin.origin]
    )
    assert (await channel.run(replace(call, grant_id=other))).ok
    [denial] = wait_for_events(shared_vault, 1, grant_id=grant, event="grant:deny")
    assert denial["code"] == "rate_limit_exceeded"


@pytest.mark.parametrize("channel", CHANNELS, ids=channel_ids())
async def test_proxy_only_grants_never_release_their_credential(
    channel: Channel, shared_vault: Vault, tenant: Tenant, origin: Upstream
) -> None:
    grant = tenant.store(bearer({"proxy_only": True}), [origin.origin])
    result = await channel.run(make_call(shared_vault, tenant, origin, grant))
    if channel.mode == "retrieve":
        assert_denied(result, channel, "restricted_grant_requires_proxy")
        assert origin.requests == []
    else:
        assert result.ok, result
        assert origin.last().headers["authorization"] == f"Bearer {TOKEN}"


@pytest.mark.parametrize("channel", CHANNELS, ids=channel_ids())
async def test_unknown_and_foreign_grants_answer_not_found(
    channel: Channel, shared_vault: Vault, tenant: Tenant, origin: Upstream
) -> None:
    foreign = Tenant.create(shared_vault, f"other-{grant_suffix()}").store(
        bearer(), [origin.origin]
    )
    for grant in ("7f1b8f9e-3c1d-4b7a-9a51-0d5f0e6b2c11", foreign):
        result = await channel.run(make_call(shared_vault, tenant, origin, grant))
        assert_denied(result, channel, "grant_not_found")
    assert origin.requests == []


@pytest.mark.parametrize("channel", CHANNELS, ids=channel_ids())
async def test_a_destination_outside_the_allowed_hosts_is_blocked(
    channel: Channel, shared_vault: Vault, tenant: Tenant, origin: Upstream, evil: Upstream
) -> None:
    grant = tenant.store(bearer(), [origin.origin])
    result = await channel.run(make_call(shared_vault, tenant, evil, grant))
    assert_denied(result, channel, "blocked_destination")
    assert evil.requests == [] and origin.requests == []
    [event] = wait_for_events(shared_vault, 1, grant_id=grant, event="grant:deny")
    assert (event["event"], event["code"]) == ("grant:deny", "blocked_destination")


def _clone(vault: Vault, grant: str, **body: Any) -> dict[str, Any]:
    with vault.admin() as admin:
        answer = admin.post(f"/v1/grants/{grant}/clone", json=body)
    assert answer.status_code == 201, answer.text
    result: dict[str, Any] = answer.json()
    return result


def _revoke(vault: Vault, grant: str) -> None:
    with vault.admin() as admin:
        assert admin.delete(f"/v1/grants/{grant}").status_code == 204


def _status(vault: Vault, grant: str) -> str:
    with vault.admin() as admin:
        return str(admin.get(f"/v1/grants/{grant}").json()["status"])


@pytest.mark.parametrize("channel", CHANNELS, ids=channel_ids())
async def test_an_expired_clone_answers_grant_expired(
    channel: Channel, shared_vault: Vault, tenant: Tenant, origin: Upstream
) -> None:
    parent = tenant.store(bearer(), [origin.origin])
    clone = _clone(shared_vault, parent, ttl_seconds=1)["grant_id"]
    # Wait for the vault's own clock to call it expired (no assertion on our clock).
    wait_until(lambda: _status(shared_vault, clone) == "expired")
    result = await channel.run(make_call(shared_vault, tenant, origin, clone))
    assert_denied(result, channel, "grant_expired")
    assert (await channel.run(make_call(shared_vault, tenant, origin, parent))).ok
    assert len(origin.requests) == 1


@pytest.mark.parametrize("channel", CHANNELS, ids=channel_ids())
async def test_revoking_a_parent_revokes_every_descendant_at_once(
    channel: Channel, shared_vault: Vault, tenant: Tenant, origin: Upstream
) -> None:
    parent = tenant.store(bearer(), [origin.origin])
    child = _clone(shared_vault, parent, ttl_seconds=3600)["grant_id"]
    grandchild = _clone(shared_vault, child, ttl_seconds=60)["grant_id"]
    sibling = _clone(shared_vault, parent)["grant_id"]
    for grant in (child, grandchild, sibling):
        assert (await channel.run(make_call(shared_vault, tenant, origin, grant))).ok

    _revoke(shared_vault, child)
    for grant in (child, grandchild):
        assert_denied(
            await channel.run(make_call(shared_vault, tenant, origin, grant)),
            channel,
            "grant_revoked",
        )
    assert (await channel.run(make_call(shared_vault, tenant, origin, sibling))).ok

    _revoke(shared_vault, parent)
    for grant in (parent, sibling):
        assert_denied(
            await channel.run(make_call(shared_vault, tenant, origin, grant)),
            channel,
            "grant_revoked",
        )
    assert len(origin.requests) == 4
