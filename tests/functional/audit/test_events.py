"""What the trail records: every use, denial and administrative change from every mode, the
outcome of each call, the filters and cursor pagination of ``GET /v1/audit``, and never a secret.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest

from support import Upstream, Vault
from support.audit import events, verify, wait_for_events, wait_until
from support.channels import CHANNELS, Call, Channel, channel_ids
from support.injection import Tenant

TOKEN = "canary-audit-Rb7Yt3"
QUERY_TOKEN = "canary-audit-query-Vn4"


def _store(tenant: Tenant, upstream: Upstream, policy: dict[str, Any] | None = None) -> str:
    body: dict[str, Any] = {"credential_type": "bearer", "credential": {"token": TOKEN}}
    if policy is not None:
        body["policy"] = policy
    return tenant.store(body, [upstream.origin])


@pytest.mark.parametrize("channel", CHANNELS, ids=channel_ids())
async def test_a_use_and_its_outcome_are_recorded_in_every_mode(
    channel: Channel, vault: Vault, upstream: Upstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ALTER_BASE_URL", vault.base_url)
    tenant = Tenant.create(vault)
    grant = _store(tenant, upstream)
    call = Call(
        vault,
        tenant.key,
        grant,
        f"{upstream.origin}/status/201?page=2",
        method="POST",
        caller="report-bot",
        reason="quarterly report",
    )
    result = await channel.run(call)
    assert result.ok and result.status == 201, result
    [use] = events(vault, grant_id=grant, event="grant:use")
    assert use["outcome"] == "allowed" and use["code"] == "allowed"
    assert use["mode"] == channel.mode
    assert use["method"] == "POST"
    assert use["url"] == call.url
    assert use["caller"] == "report-bot"
    assert use["reason"] == "quarterly report"
    assert use["app_id"] == tenant.app_id
    assert use["key_id"] is not None
    assert use["source_ip"] == "127.0.0.1"
    assert use["request_id"]
    [outcome] = wait_for_events(vault, 1, grant_id=grant, event="grant:outcome")
    assert outcome["outcome"] == "ok"
    assert outcome["upstream_status"] == 201
    assert outcome["latency_ms"] is not None and outcome["latency_ms"] >= 0
    assert outcome["mode"] == channel.mode
    assert outcome["seq"] > use["seq"]
    if channel.mode != "retrieve":
        # The vault forwarded it: the outcome points at its use and counts the bytes.
        assert outcome["details"]["use_event"] == use["id"]
        assert outcome["details"]["response_bytes"] > 0
    assert verify(vault)["ok"]


async def test_an_upstream_error_is_recorded_as_an_error_outcome(
    sqlite_vault: Vault, upstream: Upstream
) -> None:
    tenant = Tenant.create(sqlite_vault)
    grant = _store(tenant, upstream)
    response = httpx.get(
        f"{sqlite_vault.base_url}/proxy/{grant}/status/503",
        headers={"Authorization": f"Bearer {tenant.key}"},
        trust_env=False,
    )
    assert response.status_code == 503
    assert "x-vaultgate-error" not in response.headers  # the upstream's answer, relayed
    [outcome] = wait_for_events(sqlite_vault, 1, grant_id=grant, event="grant:outcome")
    assert outcome["upstream_status"] == 503


def test_every_administrative_change_is_recorded_with_its_actor(
    sqlite_vault: Vault, upstream: Upstream
) -> None:
    tenant = Tenant.create(sqlite_vault, "admin-trail")
    grant = _store(tenant, upstream)
    with sqlite_vault.admin() as admin:
        secret = admin.get(f"/v1/grants/{grant}").json()["secret_id"]
        clone = admin.post(f"/v1/grants/{grant}/clone", json={"ttl_seconds": 60}).json()
        admin.patch(f"/v1/grants/{grant}", json={"policy": {"allowed_methods": ["GET"]}})
        admin.delete(f"/v1/grants/{clone['grant_id']}")
        admin.post(f"/v1/secrets/{secret}/rotate", json={"credential": {"token": TOKEN + "2"}})
        key = admin.post(f"/v1/apps/{tenant.app_id}/keys", json={"name": "second"}).json()
        admin.delete(f"/v1/keys/{key['id']}")
        admin.delete(f"/v1/secrets/{secret}")
    trail = events(sqlite_vault, app_id=tenant.app_id)
    names = [e["event"] for e in trail]
    for expected in (
        "app:create",
        "key:create",
        "secret:create",
        "grant:clone",
        "grant:update",
        "grant:revoke",
        "secret:rotate",
        "key:revoke",
        "secret:delete",
    ):
        assert expected in names, (expected, names)
    admin_key_ids = {e["key_id"] for e in trail if e["event"] != "app:create"}
    assert len(admin_key_ids) == 1 and None not in admin_key_ids
    assert all(e["outcome"] == "ok" for e in trail)
    assert all(e["source_ip"] == "127.0.0.1" for e in trail)
    revoke = next(e for e in trail if e["event"] == "grant:revoke")
    assert revoke["details"]["revoked"] == [clone["grant_id"]]


def _query_grant(tenant: Tenant, upstream: Upstream, header: bool) -> str:
    injection: dict[str, Any] = {
        "additional": [{"target": "query", "name": "key", "value": "{token}"}]
    }
    if header:
        injection |= {"header": "X-Api-Key", "format": "{token}"}
    return tenant.store(
        {
            "credential_type": "api_key",
            "credential": {"token": QUERY_TOKEN},
            "injection": injection,
        },
        [upstream.origin],
    )


async def test_no_event_holds_a_secret_value(sqlite_vault: Vault, upstream: Upstream) -> None:
    tenant = Tenant.create(sqlite_vault)
    grant = _query_grant(tenant, upstream, header=True)
    for channel in CHANNELS:
        if channel.official:
            continue
        call = Call(sqlite_vault, tenant.key, grant, f"{upstream.origin}/v1/a?x=1")
        assert (await channel.run(call)).ok
    assert all(f"key={QUERY_TOKEN}" in r.path for r in upstream.requests)
    outcomes = wait_for_events(sqlite_vault, 4, grant_id=grant, event="grant:outcome")
    assert {o["url"] for o in outcomes} == {f"{upstream.origin}/v1/a?x=1"}
    with sqlite_vault.admin() as admin:
        exported = admin.get("/v1/audit/export").text
    assert exported.count("\n") == len(events(sqlite_vault))
    assert QUERY_TOKEN not in exported
    assert tenant.key not in exported
    assert sqlite_vault.admin_key not in exported


async def test_a_retrieve_outcome_of_a_query_only_grant_names_its_grant(
    sqlite_vault: Vault, upstream: Upstream
) -> None:
    tenant = Tenant.create(sqlite_vault)
    grant = _query_grant(tenant, upstream, header=False)
    channel = next(c for c in CHANNELS if c.name == "sdk-retrieve")
    assert (await channel.run(Call(sqlite_vault, tenant.key, grant, f"{upstream.origin}/v1/a"))).ok
    wait_until(lambda: len(events(sqlite_vault, event="grant:outcome")) == 1)
    [outcome] = events(sqlite_vault, event="grant:outcome")
    assert outcome["grant_id"] == grant


# --- filters and pagination -------------------------------------------------------------------


@pytest.fixture
def trail(sqlite_vault: Vault, upstream: Upstream) -> dict[str, Any]:
    """Two apps' traffic: allowed and denied uses by two callers."""
    first, second = Tenant.create(sqlite_vault, "first"), Tenant.create(sqlite_vault, "second")
    g1 = _store(first, upstream, {"allowed_methods": ["GET"]})
    g2 = _store(second, upstream)
    auth1 = {"Authorization": f"Bearer {first.key}"}
    auth2 = {"Authorization": f"Bearer {second.key}"}
    sends = [
        (g1, "GET", auth1, "alpha"),
        (g1, "GET", auth1, "beta"),
        (g1, "DELETE", auth1, "alpha"),
        (g2, "GET", auth2, "alpha"),
        (g2, "GET", auth2, "alpha"),
    ]
    for grant, method, auth, caller in sends:
        httpx.request(
            method,
            f"{sqlite_vault.base_url}/proxy/{grant}/v1/x",
            headers={**auth, "X-Vaultgate-Caller": caller},
            trust_env=False,
        )
    wait_until(lambda: len(events(sqlite_vault, event="grant:outcome")) == 4)
    wait_until(lambda: len(events(sqlite_vault, event="grant:deny")) == 1)
    return {"g1": g1, "g2": g2, "app1": first.app_id, "app2": second.app_id}


def _keys(items: list[dict[str, Any]]) -> list[tuple[str, str | None]]:
    return [(e["event"], e["caller"]) for e in items]


def test_audit_filters_select_exactly_the_matching_events(
    sqlite_vault: Vault, trail: dict[str, Any]
) -> None:
    everything = events(sqlite_vault)
    for name, value, column in (
        ("grant_id", trail["g1"], "grant_id"),
        ("app_id", trail["app2"], "app_id"),
        ("caller", "beta", "caller"),
        ("event", "grant:use", "event"),
        ("outcome", "denied", "outcome"),
    ):
        got = events(sqlite_vault, **{name: value})
        expected = [e for e in everything if e[column] == value]
        assert got == expected, name
        assert got, name
    denied = events(sqlite_vault, outcome="denied")
    assert [(e["event"], e["code"], e["grant_id"]) for e in denied] == [
        ("grant:deny", "method_not_allowed", trail["g1"])
    ]
    combined = events(sqlite_vault, grant_id=trail["g1"], caller="alpha", event="grant:use")
    assert len(combined) == 1


def test_audit_time_filters_are_since_inclusive_until_exclusive(
    sqlite_vault: Vault, trail: dict[str, Any]
) -> None:
    everything = events(sqlite_vault)
    middle = everything[len(everything) // 2]
    at = middle["ts"]
    since = events(sqlite_vault, since=at)
    until = events(sqlite_vault, until=at)
    assert middle in since and middle not in until
    assert len(since) + len(until) == len(everything)
    later = (datetime.fromisoformat(everything[-1]["ts"]) + timedelta(seconds=1)).isoformat()
    assert events(sqlite_vault, since=later) == []
    with sqlite_vault.admin() as admin:
        naive = admin.get("/v1/audit", params={"since": "2030-01-01T00:00:00"})
    assert naive.status_code == 422
    assert naive.json()["detail"]["field"] == "since"


def test_cursor_pagination_walks_every_event_once_newest_first(
    sqlite_vault: Vault, trail: dict[str, Any]
) -> None:
    everything = events(sqlite_vault)
    seen: list[int] = []
    cursor = None
    with sqlite_vault.admin() as admin:
        while True:
            params: dict[str, Any] = {"limit": 3}
            if cursor:
                params["cursor"] = cursor
            page = admin.get("/v1/audit", params=params).json()
            assert len(page["items"]) <= 3
            seen.extend(e["seq"] for e in page["items"])
            cursor = page["next_cursor"]
            if cursor is None:
                break
    assert seen == sorted((e["seq"] for e in everything), reverse=True)
    # A filter and a cursor together: still only matching events.
    with sqlite_vault.admin() as admin:
        first = admin.get("/v1/audit", params={"grant_id": trail["g1"], "limit": 2}).json()
        rest = admin.get(
            "/v1/audit",
            params={"grant_id": trail["g1"], "limit": 1000, "cursor": first["next_cursor"]},
        ).json()
    assert {e["grant_id"] for e in first["items"] + rest["items"]} == {trail["g1"]}
    assert len(first["items"]) + len(rest["items"]) == len(
        events(sqlite_vault, grant_id=trail["g1"])
    )


@pytest.mark.parametrize(
    ("params", "status", "field"),
    [
        ({"limit": 0}, 422, "limit"),
        ({"limit": 100_000}, 422, "limit"),
        ({"limit": "ten"}, 422, "limit"),
        ({"cursor": "not-a-cursor"}, 400, "cursor"),
        ({"cursor": "czotMQ"}, 400, "cursor"),
        ({"outcome": "maybe"}, 422, "outcome"),
        ({"since": "yesterday"}, 422, "since"),
    ],
)
def test_bad_audit_queries_are_a_clear_4xx(
    params: dict[str, Any], status: int, field: str, sqlite_vault: Vault
) -> None:
    with sqlite_vault.admin() as admin:
        answer = admin.get("/v1/audit", params=params)
    assert answer.status_code == status, answer.text
    assert answer.json()["detail"]["field"] == field


def test_the_audit_api_needs_an_admin_key(sqlite_vault: Vault) -> None:
    _, app_key = sqlite_vault.make_app_key(f"app-{uuid.uuid4().hex[:6]}")
    for path in ("/v1/audit", "/v1/audit/verify", "/v1/audit/export"):
        anonymous = httpx.get(sqlite_vault.base_url + path, trust_env=False)
        as_app = httpx.get(
            sqlite_vault.base_url + path,
            headers={"Authorization": f"Bearer {app_key}"},
            trust_env=False,
        )
        assert anonymous.status_code == 401
        assert as_app.status_code == 403


def test_timestamps_are_utc(sqlite_vault: Vault, trail: dict[str, Any]) -> None:
    stamps = [datetime.fromisoformat(e["ts"]) for e in events(sqlite_vault)]
    assert all(ts.tzinfo is not None and ts.utcoffset() == timedelta(0) for ts in stamps)
