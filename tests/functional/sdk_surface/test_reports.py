"""``SyncVault``'s outcome reports against the running vault: many caller threads, one report
thread sending pipelined batches, and every report recorded once (on SQLite and PostgreSQL)."""

from __future__ import annotations

import json
import secrets
import threading
import time
from pathlib import Path

import httpx
import pytest

from support import Upstream, run_vault
from support.audit import events
from support.injection import Tenant
from vaultgate import SyncVault
from vaultgate._protocol import report_status
from vaultgate.injection.signing import sign_request

PATH = "/sdk/oauth/audit/api-call"
THREADS = 8
CALLS = 40
WAIT = 120.0  # generous: the machine is shared; nothing here measures time


def test_eight_threads_in_a_loop_lose_no_report_and_none_is_recorded_twice(
    tenant: Tenant, origin: Upstream
) -> None:
    grant = tenant.store(
        {"credential_type": "bearer", "credential": {"token": "canary-reports-Jd73"}},
        [origin.origin],
    )
    errors: list[BaseException] = []
    with SyncVault(api_key=tenant.key, base_url=tenant.vault.base_url) as vault:

        def calls() -> None:
            try:
                for n in range(CALLS):
                    vault.request("GET", f"{origin.origin}/r/{n}", grant_id=grant)
            except BaseException as exc:  # seen by the test, not lost in the thread
                errors.append(exc)

        threads = [threading.Thread(target=calls) for _ in range(THREADS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(WAIT)
    assert errors == []
    assert (vault.pending_reports, vault.dropped_reports, vault.failed_reports) == (0, 0, 0)
    # close() returned after the vault's 202 for each: each one is committed by then.
    outcomes = events(tenant.vault, grant_id=grant, event="grant:outcome")
    assert len(outcomes) == THREADS * CALLS
    assert all(o["outcome"] == "ok" and o["mode"] == "retrieve" for o in outcomes)


def signed_report(tenant: Tenant, grant: str) -> tuple[bytes, dict[str, str]]:
    body = json.dumps({"grant_id": grant, "response_status": 200}).encode()
    headers = sign_request(
        tenant.key, "POST", PATH, body, now=int(time.time()), nonce=secrets.token_hex(16)
    )
    return body, headers | {"x-api-key": tenant.key}


def send(tenant: Tenant, body: bytes, headers: dict[str, str]) -> httpx.Response:
    return httpx.post(tenant.vault.base_url + PATH, content=body, headers=headers, trust_env=False)


def report(tenant: Tenant, grant: str, forwarded_for: str) -> httpx.Response:
    body, headers = signed_report(tenant, grant)
    return send(tenant, body, headers | {"x-forwarded-for": forwarded_for})


def test_a_resent_copy_of_a_recorded_report_is_refused_and_counts_as_delivered(
    tenant: Tenant, origin: Upstream
) -> None:
    """What the pipelined sender relies on when a connection ends unanswered: the very same
    bytes sent again are refused by the vault's replay check, the report is recorded once,
    and the client reads that refusal of a resent copy as the first copy's success."""
    grant = tenant.store(
        {"credential_type": "bearer", "credential": {"token": "canary-reports-Jd73"}},
        [origin.origin],
    )
    body, headers = signed_report(tenant, grant)
    first, again = send(tenant, body, headers), send(tenant, body, headers)
    assert first.status_code == 202
    assert again.status_code == 401
    assert report_status(again.status_code, again.content, resent=True) == 202
    assert report_status(again.status_code, again.content, resent=False) == 401
    outcomes = events(tenant.vault, grant_id=grant, event="grant:outcome")
    # Recorded once. (A copy that another worker's admission refuses is audited as a denial;
    # this one the worker's own nonce cache refused before it reached the trail.)
    assert [o["outcome"] for o in outcomes if o["outcome"] != "denied"] == ["ok"]


@pytest.mark.parametrize(
    ("trusted", "recorded"),
    [(True, "198.51.100.7"), (False, "127.0.0.1")],
)
def test_a_report_records_the_client_behind_a_trusted_proxy_and_ignores_a_spoofed_one(
    tmp_path: Path, origin: Upstream, trusted: bool, recorded: str
) -> None:
    env = {"VAULTGATE_TRUSTED_PROXIES": "127.0.0.1/32"} if trusted else {}
    with run_vault(tmp_path / "data", extra_env=env) as vault:
        tenant = Tenant.create(vault)
        grant = tenant.store(
            {"credential_type": "bearer", "credential": {"token": "canary-reports-Jd73"}},
            [origin.origin],
        )
        assert report(tenant, grant, "198.51.100.7").status_code == 202
        [outcome] = events(vault, grant_id=grant, event="grant:outcome")
    assert outcome["source_ip"] == recorded
