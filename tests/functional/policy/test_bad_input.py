"""Bad policies and bad reasons: a clear 4xx naming the field, and nothing half-applied.

Every bad policy is tried on the three ways a policy is written (a new secret, a PATCH, a clone);
after each refusal the grant's policy, its clones and the audit trail are what they were.
"""

from __future__ import annotations

from typing import Any

import alter_sdk
import httpx
import pytest

import vaultgate
from support import Upstream, Vault
from support.audit import events, wait_for_events
from support.channels import Call, transparent
from support.injection import Tenant, sdk_call

TOKEN = "canary-badinput-Pf3Nw1"
GOOD = {"allowed_methods": ["GET"], "rate_limit": {"requests": 5, "per_seconds": 60}}
WEEK = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


def _window(**window: Any) -> dict[str, Any]:
    return {"schedule": {"timezone": "Europe/Paris", "windows": [{"days": WEEK, **window}]}}


# (id, policy, the field the 422 must name)
BAD: list[tuple[str, dict[str, Any], str]] = [
    ("unknown-field", {"allowed_hosts": ["*"]}, "policy.allowed_hosts"),
    (
        "unknown-nested",
        {"rate_limit": {"requests": 1, "per_seconds": 1, "burst": 9}},
        "policy.rate_limit",
    ),
    ("method", {"allowed_methods": ["FETCH"]}, "policy.allowed_methods"),
    ("empty-window", _window(start="09:00", end="09:00"), "policy.schedule"),
    ("hour-25", _window(start="25:00", end="26:00"), "policy.schedule"),
    (
        "bad-day",
        {
            "schedule": {
                "timezone": "UTC",
                "windows": [{"days": ["funday"], "start": "09:00", "end": "10:00"}],
            }
        },
        "policy.schedule",
    ),
    ("no-windows", {"schedule": {"timezone": "UTC", "windows": []}}, "policy.schedule"),
    (
        "zone",
        {
            "schedule": {
                "timezone": "Mars/Olympus_Mons",
                "windows": [{"days": WEEK, "start": "09:00", "end": "10:00"}],
            }
        },
        "policy.schedule.timezone",
    ),
    (
        "zone-path",
        {
            "schedule": {
                "timezone": "../../etc/passwd",
                "windows": [{"days": WEEK, "start": "09:00", "end": "10:00"}],
            }
        },
        "policy.schedule.timezone",
    ),
    ("cidr-prefix", {"ip_allow": ["10.0.0.0/33"]}, "policy.ip_allow"),
    ("cidr-text", {"ip_deny": ["not-a-network"]}, "policy.ip_deny"),
    ("cidr-number", {"ip_allow": [167772160]}, "policy.ip_allow"),
    ("rate-zero", {"rate_limit": {"requests": 0, "per_seconds": 60}}, "policy.rate_limit"),
    ("rate-window-zero", {"rate_limit": {"requests": 5, "per_seconds": 0}}, "policy.rate_limit"),
    ("rate-negative", {"rate_limit": {"requests": -1, "per_seconds": 60}}, "policy.rate_limit"),
    ("naive-time", {"expires_at": "2030-01-01T00:00:00"}, "policy.expires_at"),
    (
        "ends-before-start",
        {"not_before": "2030-01-02T00:00:00Z", "expires_at": "2030-01-01T00:00:00Z"},
        "policy.expires_at",
    ),
    ("reason-flag-text", {"require_reason": "yes"}, "policy.require_reason"),
    ("caller-control", {"callers": ["evil\nagent"]}, "policy.callers"),
]


def _store(tenant: Tenant, upstream: Upstream, policy: dict[str, Any] | None = GOOD) -> str:
    body: dict[str, Any] = {"credential_type": "bearer", "credential": {"token": TOKEN}}
    if policy is not None:
        body["policy"] = policy
    return tenant.store(body, [upstream.origin])


def _assert_refused(answer: httpx.Response, field: str) -> None:
    assert answer.status_code == 422, answer.text
    detail = answer.json()["detail"]
    assert set(detail) >= {"error", "message", "field"}
    assert detail["field"].startswith(field), detail
    assert len(detail["message"]) <= 500


def _snapshot(vault: Vault, grant: str) -> tuple[Any, ...]:
    with vault.admin() as admin:
        shown = admin.get(f"/v1/grants/{grant}").json()
        secret = admin.get(f"/v1/secrets/{shown['secret_id']}").json()
    return shown, secret["grants"], len(events(vault, grant_id=grant))


@pytest.mark.parametrize(("policy", "field"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_a_bad_policy_is_refused_everywhere_and_nothing_changes(
    policy: dict[str, Any], field: str, shared_vault: Vault, tenant: Tenant, origin: Upstream
) -> None:
    grant = _store(tenant, origin)
    before = _snapshot(shared_vault, grant)
    with shared_vault.admin() as admin:
        secrets_before = admin.get("/v1/secrets", params={"app_id": tenant.app_id}).json()
        created = admin.post(
            "/v1/secrets",
            json={
                "app_id": tenant.app_id,
                "name": "refused",
                "credential_type": "bearer",
                "credential": {"token": TOKEN},
                "allowed_hosts": [origin.origin],
                "policy": policy,
            },
        )
        _assert_refused(created, field)
        assert admin.get("/v1/secrets", params={"app_id": tenant.app_id}).json() == secrets_before
        _assert_refused(admin.patch(f"/v1/grants/{grant}", json={"policy": policy}), field)
        _assert_refused(admin.post(f"/v1/grants/{grant}/clone", json={"policy": policy}), field)
    assert _snapshot(shared_vault, grant) == before
    assert TOKEN not in created.text


def test_a_refused_patch_leaves_the_enforced_policy_in_place(
    shared_vault: Vault, tenant: Tenant, origin: Upstream
) -> None:
    grant = _store(tenant, origin, {"allowed_methods": ["GET"]})
    with shared_vault.admin() as admin:
        # The first field is fine and wider; the second is bad: the first must not stick.
        answer = admin.patch(
            f"/v1/grants/{grant}",
            json={"policy": {"allowed_methods": ["GET", "DELETE"], "ip_allow": ["300.1.1.1/8"]}},
        )
        _assert_refused(answer, "policy.ip_allow")
        assert admin.get(f"/v1/grants/{grant}").json()["policy"] == {"allowed_methods": ["GET"]}
    assert events(shared_vault, grant_id=grant, event="grant:update") == []


async def test_a_refused_patch_is_not_enforced_either(
    shared_vault: Vault, tenant: Tenant, origin: Upstream
) -> None:
    grant = _store(tenant, origin, {"allowed_methods": ["GET"]})
    call = Call(shared_vault, tenant.key, grant, f"{origin.origin}/v1/x", method="DELETE")
    with shared_vault.admin() as admin:
        admin.patch(f"/v1/grants/{grant}", json={"policy": {"allowed_methods": ["DELETE"], "x": 1}})
    assert (await transparent(call)).code == "method_not_allowed"
    with shared_vault.admin() as admin:
        ok = admin.patch(f"/v1/grants/{grant}", json={"policy": {"allowed_methods": ["DELETE"]}})
    assert ok.status_code == 200, ok.text
    assert (await transparent(call)).ok
    [update] = events(shared_vault, grant_id=grant, event="grant:update")
    assert update["details"]["policy"] == {"allowed_methods": ["DELETE"]}


@pytest.mark.parametrize("body", [{"policy": "GET only"}, {"policy": None}, {"policy": []}, {}])
def test_a_patch_without_a_policy_object_is_refused(
    body: dict[str, Any], shared_vault: Vault, tenant: Tenant, origin: Upstream
) -> None:
    grant = _store(tenant, origin)
    before = _snapshot(shared_vault, grant)
    with shared_vault.admin() as admin:
        answer = admin.patch(f"/v1/grants/{grant}", json=body)
    assert answer.status_code in (400, 422), answer.text
    assert answer.json()["detail"]["field"].startswith("policy")
    assert _snapshot(shared_vault, grant) == before


FORGED = (
    "monthly run\n2030-01-01 grant:use allowed FORGED\r\n\x1b[2J\x1b[31mred\x1b[0m\u202eevil\\x0a"
)


async def test_a_reason_is_stored_escaped_and_capped(
    shared_vault: Vault, tenant: Tenant, origin: Upstream
) -> None:
    grant = _store(tenant, origin, None)
    reason = FORGED + "A" * 5000
    async with vaultgate.AlterVault(api_key=tenant.key, base_url=shared_vault.base_url) as vault:
        await vault.request("GET", f"{origin.origin}/v1/a", grant_id=grant, reason=reason)
        await vault.proxy_request("GET", f"{origin.origin}/v1/a", grant_id=grant, reason=reason)
    uses = events(shared_vault, grant_id=grant, event="grant:use")
    assert len(uses) == 2
    for use in uses:
        stored = use["reason"]
        assert len(stored) <= 1024
        assert stored.endswith("...[truncated]")
        assert not any(ch in stored for ch in "\n\r\x1b\u202e")
        assert stored.startswith(
            "monthly run\\x0a2030-01-01 grant:use allowed FORGED\\x0d\\x0a\\x1b[2J"
        )
        # A backslash the caller sent is escaped too: "\x0a" in the trail is always ours.
        assert "\\u202eevil\\\\x0a" in stored


@pytest.mark.parametrize("path", ["/sdk/token", "/sdk/proxy"])
def test_a_megabyte_reason_is_refused_before_anything_happens(
    path: str, shared_vault: Vault, tenant: Tenant, origin: Upstream
) -> None:
    grant = _store(tenant, origin, None)
    reason = ("x\n\x1b[31m" * 150_000)[: 1024 * 1024]
    url = f"{origin.origin}/v1/a"
    payload: dict[str, Any] = {"grant_id": grant, "reason": reason}
    if path == "/sdk/token":
        payload["request"] = {"method": "GET", "url": url}
    else:
        payload |= {"method": "GET", "url": url}
    answer = sdk_call(shared_vault, tenant.key, path, payload)
    assert answer.status_code == 422, answer.text
    assert answer.json()["detail"]["field"] == "reason"
    assert TOKEN not in answer.text
    assert origin.requests == []
    assert events(shared_vault, grant_id=grant, event="grant:use") == []


async def test_the_official_client_gets_a_typed_error_for_a_megabyte_reason(
    shared_vault: Vault, tenant: Tenant, origin: Upstream
) -> None:
    grant = _store(tenant, origin, None)
    reason = "y\r\n\x1b]0;title\x07" * 80_000
    async with alter_sdk.App(api_key=tenant.key) as app:
        with pytest.raises(alter_sdk.AlterSDKError):
            await app.proxy_request(
                alter_sdk.HttpMethod.GET, f"{origin.origin}/v1/a", grant_id=grant, reason=reason
            )
    assert origin.requests == []


def test_transparent_reason_headers_cannot_smuggle_controls(
    shared_vault: Vault, tenant: Tenant, origin: Upstream
) -> None:
    grant = _store(tenant, origin, None)
    url = f"{shared_vault.base_url}/proxy/{grant}/v1/a"
    auth = (b"Authorization", f"Bearer {tenant.key}".encode())
    # A raw ESC in a header never gets past the HTTP parser: a 400, nothing forwarded.
    refused = httpx.get(
        url, headers=[auth, (b"X-Vaultgate-Reason", b"ok \x1b[31m")], trust_env=False
    )
    assert refused.status_code == 400
    assert origin.requests == []
    # UTF-8 for U+202E (right-to-left override) arrives as latin-1 text holding a C1 control.
    reason = "ok \u202egnp.exe ".encode() + b"z" * 3000
    answer = httpx.get(url, headers=[auth, (b"X-Vaultgate-Reason", reason)], trust_env=False)
    assert answer.status_code == 200, answer.text
    [use] = wait_for_events(shared_vault, 1, grant_id=grant, event="grant:use")
    assert use["reason"].startswith("ok \u00e2\\x80\u00aegnp.exe")
    assert not any(0x80 <= ord(ch) <= 0x9F for ch in use["reason"])
    assert len(use["reason"]) <= 1024
