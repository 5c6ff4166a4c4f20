"""App keys limited from the management API and the CLI: scopes, a CIDR allow-list and a
request rate, enforced on the official client's calls."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import alter_sdk
import pytest
from alter_sdk import HttpMethod

from support import Upstream
from support.injection import Tenant

TOKEN = "canary-limits-Gd83"


def make_key(tenant: Tenant, **limits: Any) -> Any:
    with tenant.vault.admin() as admin:
        return admin.post(f"/v1/apps/{tenant.app_id}/keys", json={"name": "limited", **limits})


def listed(tenant: Tenant) -> dict[str, dict[str, Any]]:
    with tenant.vault.admin() as admin:
        items = admin.get(f"/v1/apps/{tenant.app_id}/keys").json()["items"]
    return {k["id"]: k for k in items}


async def test_a_key_made_with_limits_is_held_to_them(tenant: Tenant, origin: Upstream) -> None:
    grant = tenant.store(
        {"credential_type": "bearer", "credential": {"token": TOKEN}}, [origin.origin]
    )
    made = make_key(
        tenant,
        scopes=["grants:read", "proxy:execute"],
        cidr_allowlist=["127.0.0.1/32"],
        rate_limit_rpm=3,
    )
    assert made.status_code == 201, made.text
    key = made.json()
    assert (key["scopes"], key["cidr_allowlist"], key["rate_limit_rpm"]) == (
        ["grants:read", "proxy:execute"],
        ["127.0.0.1/32"],
        3,
    )
    shown = listed(tenant)
    assert "api_key" not in shown[key["id"]]
    assert shown[key["id"]]["rate_limit_rpm"] == 3
    full = [k for k in shown.values() if k["id"] != key["id"]]
    assert full and full[0]["rate_limit_rpm"] is None and "tokens:retrieve" in full[0]["scopes"]
    url = f"{origin.origin}/v1/r"
    async with alter_sdk.App(api_key=key["api_key"]) as app:
        assert (await app.proxy_request(HttpMethod.GET, url, grant_id=grant)).status_code == 200
        with pytest.raises(alter_sdk.InsufficientScopeError) as scope:
            await app.request(HttpMethod.GET, url, grant_id=grant)
        assert scope.value.missing == ["tokens:retrieve"]
        await app.list_grants()
        with pytest.raises(alter_sdk.RateLimitError) as limited:
            await app.list_grants()
    assert limited.value.retry_after is not None and limited.value.retry_after >= 1
    assert len(origin.requests) == 1


async def test_rotating_a_limited_key_does_not_refill_its_rate(tenant: Tenant) -> None:
    # Attack: a 2-a-minute key that may manage keys spends one request, then rotates itself
    # with the second. Were the successor's bucket a fresh one, every rotation would buy another
    # burst (and the old key, working through its grace, would keep a bucket of its own): an
    # unbounded rate. The successor and the old key spend the one bucket the key had.
    made = make_key(tenant, scopes=["grants:read", "keys:admin"], rate_limit_rpm=2).json()
    async with alter_sdk.App(api_key=made["api_key"]) as app:
        await app.list_grants()
        successor = await app.keys.rotate(key_id=made["id"], overlap_days=7)
        with pytest.raises(alter_sdk.RateLimitError):
            await app.list_grants()  # the old key, in its grace: the bucket is spent
    assert successor.rate_limit_rpm == 2
    async with alter_sdk.App(api_key=successor.api_key) as rotated:
        with pytest.raises(alter_sdk.RateLimitError) as limited:
            await rotated.list_grants()
        with pytest.raises(alter_sdk.RateLimitError):
            await rotated.keys.rotate(key_id=str(successor.id))
    assert limited.value.retry_after is not None and 1 <= limited.value.retry_after <= 30
    # The allowed twin: a key made with the same limits, not rotated, has its own two.
    other = make_key(tenant, scopes=["grants:read", "keys:admin"], rate_limit_rpm=2).json()
    async with alter_sdk.App(api_key=other["api_key"]) as app:
        await app.list_grants()
        await app.list_grants()
        with pytest.raises(alter_sdk.RateLimitError):
            await app.list_grants()


async def test_every_key_of_a_chain_of_rotations_spends_the_first_ones_bucket(
    tenant: Tenant,
) -> None:
    first = make_key(tenant, scopes=["grants:read", "keys:admin"], rate_limit_rpm=4).json()
    async with alter_sdk.App(api_key=first["api_key"]) as app:
        second = await app.keys.rotate(key_id=first["id"], overlap_days=7)  # 1 of 4
    async with alter_sdk.App(api_key=second.api_key) as app:
        third = await app.keys.rotate(key_id=str(second.id), overlap_days=7)  # 2 of 4
    async with alter_sdk.App(api_key=third.api_key) as app:
        await app.list_grants()  # 3 of 4
    async with alter_sdk.App(api_key=first["api_key"]) as app:
        await app.list_grants()  # 4 of 4, by the first key in its grace
    for key in (first["api_key"], second.api_key, third.api_key):
        async with alter_sdk.App(api_key=key) as app:
            with pytest.raises(alter_sdk.RateLimitError):
                await app.list_grants()


async def test_a_key_used_outside_its_networks_is_refused(tenant: Tenant) -> None:
    key = make_key(tenant, cidr_allowlist=["10.0.0.0/8"]).json()
    assert len(key["scopes"]) > 5  # no scopes asked for: every scope
    async with alter_sdk.App(api_key=key["api_key"]) as app:
        with pytest.raises(alter_sdk.PolicyViolationError) as raised:
            await app.list_grants()
    assert raised.value.policy_error == "ip_not_allowed"


@pytest.mark.parametrize(
    ("limits", "field"),
    [
        ({"scopes": ["grants:everything"]}, "scopes"),
        ({"scopes": []}, "scopes"),
        ({"cidr_allowlist": ["not-a-network"]}, "cidr_allowlist"),
        ({"rate_limit_rpm": 0}, "rate_limit_rpm"),
        ({"rate_limit_rpm": "lots"}, "rate_limit_rpm"),
    ],
)
def test_bad_limits_are_a_4xx_naming_the_field(
    tenant: Tenant, limits: dict[str, Any], field: str
) -> None:
    before = len(listed(tenant))
    answer = make_key(tenant, **limits)
    assert answer.status_code == 422, answer.text
    assert field in json.dumps(answer.json()["detail"])
    assert len(listed(tenant)) == before


def test_the_cli_makes_and_lists_limited_keys(tenant: Tenant) -> None:
    env = {
        **os.environ,
        "VAULTGATE_URL": tenant.vault.base_url,
        "VAULTGATE_ADMIN_KEY": tenant.vault.admin_key,
    }

    def cli(*args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "vaultgate.cli", *args],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    made = json.loads(
        cli(
            "keys",
            "create",
            tenant.app_id,
            "--name",
            "ci",
            "--scope",
            "proxy:execute",
            "--scope",
            "audit:emit",
            "--cidr",
            "10.1.0.0/16",
            "--rate-limit-rpm",
            "120",
            "--json",
        )
    )
    assert made["api_key"].startswith("alter_key_")
    assert (made["scopes"], made["cidr_allowlist"], made["rate_limit_rpm"]) == (
        ["audit:emit", "proxy:execute"],
        ["10.1.0.0/16"],
        120,
    )
    rows = {k["id"]: k for k in json.loads(cli("keys", "list", tenant.app_id, "--json"))}
    assert rows[made["id"]]["rate_limit_rpm"] == 120
    table = cli("keys", "list", tenant.app_id)
    assert "RATE_LIMIT_RPM" in table and "10.1.0.0/16" in table
    assert made["api_key"] not in table
