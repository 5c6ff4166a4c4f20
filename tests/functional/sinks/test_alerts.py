"""Alerts raised by the alerter on the vault's own clock (moved by the test, never slept on):
an expiring clone warned once per lead window, a denial spike, a lagging sink, all delivered
through a sink as ``alert:*`` events."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx

from functional.sinks.conftest import run_vault_at, start_clock
from support import Upstream
from support.audit import wait_until

TOKEN = "alert-canary-token-Vb73Kd"


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_a_clone_about_to_lapse_is_alerted_once_and_reaches_the_sink(
    tmp_path: Path, upstream: Upstream
) -> None:
    clock = start_clock()
    alerts = tmp_path / "alerts.jsonl"
    # The clock jumps by the hour here: the sink-lag rule (its own test below) stays out of it.
    env = {"VAULTGATE_ALERT_LEAD_SECONDS": "3600", "VAULTGATE_ALERT_SINK_LAG_SECONDS": "1e9"}
    with run_vault_at(tmp_path / "data", clock, env) as (vault, rt):
        app_id, _ = vault.make_app_key()
        with vault.admin() as admin:
            sink = {
                "name": "alerts",
                "kind": "file",
                "config": {"path": str(alerts)},
                "filter": {"events": ["alert:*"]},
            }
            assert admin.post("/v1/audit/sinks", json=sink).status_code == 201
            secret = admin.post(
                "/v1/secrets",
                json={
                    "app_id": app_id,
                    "name": "s",
                    "credential_type": "bearer",
                    "credential": {"token": TOKEN},
                    "allowed_hosts": [upstream.origin],
                },
            ).json()
            clone = admin.post(
                f"/v1/grants/{secret['grant_id']}/clone", json={"ttl_seconds": 7200}
            ).json()

        assert rt.alerter.tick() == []  # two hours left, the lead is one
        clock.advance(3000)
        assert rt.alerter.tick() == []  # 70 minutes left
        clock.advance(900)
        assert rt.alerter.tick() == ["alert:expiry"]  # 55 minutes left: inside the lead
        clock.advance(60)
        assert rt.alerter.tick() == []  # the same clone, the same window: not again
        wait_until(lambda: len(_lines(alerts)) >= 1, tries=2400)
        with vault.admin() as admin:
            trail = admin.get("/v1/audit", params={"event": "alert:expiry"}).json()["items"]

    assert len(trail) == 1
    (alert,) = _lines(alerts)
    assert alert["id"] == trail[0]["id"]
    assert (alert["event"], alert["code"], alert["grant_id"]) == (
        "alert:expiry",
        "clone_expiring",
        clone["grant_id"],
    )
    assert alert["details"]["object"] == "clone"
    assert alert["details"]["lead_seconds"] == 3600
    assert 0 < alert["details"]["expires_in_seconds"] <= 3600
    assert TOKEN not in alerts.read_text()


def test_a_denial_spike_alerts_once_per_window(tmp_path: Path, upstream: Upstream) -> None:
    clock = start_clock()
    env = {"VAULTGATE_ALERT_DENIAL_SPIKE_COUNT": "3", "VAULTGATE_ALERT_DENIAL_SPIKE_WINDOW": "600"}
    with run_vault_at(tmp_path / "data", clock, env) as (vault, rt):
        app_id, key = vault.make_app_key()
        with vault.admin() as admin:
            grant = admin.post(
                "/v1/secrets",
                json={
                    "app_id": app_id,
                    "name": "s",
                    "credential_type": "bearer",
                    "credential": {"token": TOKEN},
                    "allowed_hosts": [upstream.origin],
                    "policy": {"allowed_methods": ["GET"]},
                },
            ).json()["grant_id"]

            def denials() -> int:
                found = admin.get("/v1/audit", params={"event": "grant:deny"}).json()
                return len(found["items"])

            url = f"{vault.base_url}/proxy/{grant}/x"
            headers = {"Authorization": f"Bearer {key}"}
            for _ in range(2):
                assert httpx.post(url, headers=headers).status_code == 403
            wait_until(lambda: denials() == 2)
            assert rt.alerter.tick() == []  # two is not a spike
            assert httpx.post(url, headers=headers).status_code == 403  # allowed twin: 3
            wait_until(lambda: denials() == 3)
            assert rt.alerter.tick() == ["alert:denial_spike"]
            assert rt.alerter.tick() == []  # once per window, not every tick
            spike = admin.get("/v1/audit", params={"event": "alert:denial_spike"}).json()

    (event,) = spike["items"]
    assert event["details"] == {"denials": 3, "window_seconds": 600}
    assert event["outcome"] == "error"


def test_a_sink_falling_behind_alerts_once_per_episode(tmp_path: Path) -> None:
    clock = start_clock()
    env = {"VAULTGATE_ALERT_SINK_LAG_EVENTS": "2"}
    with run_vault_at(tmp_path / "data", clock, env) as (vault, rt), vault.admin() as admin:
        sink = {
            "name": "stuck",
            "kind": "syslog",
            "config": {"host": "127.0.0.1", "port": 9},  # discard: nothing listens
        }
        assert admin.post("/v1/audit/sinks", json=sink).status_code == 201
        for i in range(3):
            assert admin.post("/v1/apps", json={"name": f"a{i}"}).status_code == 201
        assert rt.alerter.tick() == ["alert:sink_lag"]
        assert rt.alerter.tick() == []
        lag = admin.get("/v1/audit", params={"event": "alert:sink_lag"}).json()["items"]

        def state() -> dict[str, Any]:
            found: dict[str, Any] = admin.get("/v1/audit/sinks/stuck").json()["state"]
            return found

        wait_until(lambda: state()["attempts"] >= 1, tries=2400)
        last_error = state()["last_error"]
    (event,) = lag
    assert event["details"]["sink"] == "stuck" and event["details"]["lag_events"] >= 3
    assert event["code"] == "sink_behind"
    assert "syslog" in (last_error or "")


def test_a_refused_oauth_refresh_alerts_once_and_a_good_one_does_not(tmp_path: Path) -> None:
    import time

    from support.oauth_server import run_auth_server

    def refresh_secret(auth: Any, app_id: str, refused: bool) -> str:
        client = auth.add_client()
        seeded = auth.seed_refresh_token(client)
        if refused:
            auth.revoke_refresh_tokens(client)  # consent withdrawn at the provider
        credential = {
            "token_url": auth.token_url,
            "client_id": client.client_id,
            "client_secret": client.client_secret,
            "refresh_token": seeded,
            "access_token": "stale-access-token",
            "expires_at": str(int(time.time()) - 3600),
        }
        with vault.admin() as admin:
            created = admin.post(
                "/v1/secrets",
                json={
                    "app_id": app_id,
                    "name": f"oauth-{'refused' if refused else 'good'}",
                    "credential_type": "oauth2_refresh_token",
                    "credential": credential,
                    "allowed_hosts": [auth.origin],
                },
            )
        assert created.status_code == 201, created.text
        return str(created.json()["grant_id"])

    clock = start_clock()
    with run_auth_server() as auth, run_vault_at(tmp_path / "data", clock) as (vault, rt):
        app_id, key = vault.make_app_key()
        headers = {"Authorization": f"Bearer {key}"}
        good = refresh_secret(auth, app_id, refused=False)
        answer = httpx.get(f"{vault.base_url}/proxy/{good}/api/whoami", headers=headers)
        assert answer.status_code == 200, answer.text  # refreshed: no alert (the twin)
        assert rt.alerter.tick() == []
        refused = refresh_secret(auth, app_id, refused=True)
        answer = httpx.get(f"{vault.base_url}/proxy/{refused}/api/whoami", headers=headers)
        assert answer.status_code == 403
        assert answer.json()["detail"]["error"] == "credential_revoked"
        assert rt.alerter.tick() == ["alert:refresh_failed"]
        assert rt.alerter.tick() == []  # the same failure is not alerted twice
        with vault.admin() as admin:
            found = admin.get("/v1/audit", params={"event": "alert:refresh_failed"}).json()
    (alert,) = found["items"]
    assert alert["grant_id"] == refused
    assert alert["code"] == "oauth_refresh_failed"
    assert alert["details"]["refresh_code"] == "reauth_required"
    assert "stale-access-token" not in json.dumps(found)
