"""The approval endpoints' edges: the transparent proxy holds too, polls are signed and scoped,
and bad input is a 4xx naming the problem."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Callable

import alter_sdk
import httpx
import pytest

from support import Upstream, Vault
from support.approvals import Held, decide
from support.injection import Tenant, sdk_call
from vaultgate.injection.signing import sign_request

pytestmark = pytest.mark.usefixtures("official")


def signed_get(vault: Vault, key: str, path: str) -> httpx.Response:
    headers = sign_request(key, "GET", path, b"", now=int(time.time()), nonce=secrets.token_hex(16))
    headers["x-api-key"] = key
    return httpx.get(vault.base_url + path, headers=headers, trust_env=False, timeout=40)


def _hold(vault: Vault, held: Held, upstream: Upstream) -> str:
    answer = sdk_call(
        vault,
        held.tenant.key,
        "/sdk/proxy",
        {"grant_id": held.grant_id, "method": "POST", "url": f"{upstream.origin}/v1/a"},
    )
    assert answer.status_code == 202, answer.text
    return str(answer.json()["approval_id"])


async def test_the_transparent_proxy_holds_a_call_and_the_client_awaits_it(
    vault: Vault, upstream: Upstream, hold_grant: Callable[..., Held]
) -> None:
    held = hold_grant(upstream, methods=["POST"])
    proxied = f"{vault.base_url}/proxy/{held.grant_id}"
    auth = {"Authorization": f"Bearer {held.tenant.key}", "X-Vaultgate-Caller": "bot-7"}
    with httpx.Client(trust_env=False, timeout=30) as client:
        answer = client.post(f"{proxied}/v1/orders", content=b'{"qty":3}', headers=auth)
        assert answer.status_code == 202, answer.text
        assert client.get(f"{proxied}/v1/orders", headers=auth).status_code == 200  # not held
    pending = answer.json()
    assert pending["status"] == "pending" and len(upstream.requests) == 1
    with vault.admin() as admin:
        shown = admin.get(f"/v1/approvals/{pending['approval_id']}").json()
    assert (shown["caller"], shown["mode"], shown["method"]) == ("bot-7", "transparent", "POST")
    assert held.tenant.key not in str(shown["request"]), "the app key was kept with the call"
    assert decide(vault, pending["approval_id"], "alice@example.com").status_code == 200
    async with alter_sdk.App(api_key=held.tenant.key) as app:
        result = await app.await_approval(pending["approval_id"], timeout=60, poll_interval=0.2)
    assert result.status_code == 200
    assert [r.method for r in upstream.requests] == ["GET", "POST"]
    assert upstream.last().body == b'{"qty":3}'
    assert upstream.last().headers["authorization"].startswith("Bearer canary-")


def test_polls_are_signed_and_scoped_to_the_asking_app(
    vault: Vault, upstream: Upstream, hold_grant: Callable[..., Held]
) -> None:
    held = hold_grant(upstream)
    approval_id = _hold(vault, held, upstream)
    mine = signed_get(vault, held.tenant.key, f"/sdk/approvals/{approval_id}")
    assert mine.status_code == 200 and mine.json()["status"] == "pending"
    other = Tenant.create(vault, "other-app")
    theirs = signed_get(vault, other.key, f"/sdk/approvals/{approval_id}")
    assert (theirs.status_code, theirs.json()["detail"]["error"]) == (404, "approval_not_found")
    unsigned = httpx.get(
        f"{vault.base_url}/sdk/approvals/{approval_id}",
        headers={"x-api-key": held.tenant.key},
        trust_env=False,
    )
    assert unsigned.status_code == 401
    early = signed_get(vault, held.tenant.key, f"/sdk/approvals/{approval_id}/result")
    assert (early.status_code, early.json()["detail"]["error"]) == (409, "approval_pending")


@pytest.mark.parametrize("wait", ["26", "-1", "abc", "1.5"])
def test_a_wait_outside_0_to_25_is_refused(
    vault: Vault, upstream: Upstream, hold_grant: Callable[..., Held], wait: str
) -> None:
    held = hold_grant(upstream)
    approval_id = _hold(vault, held, upstream)
    answer = signed_get(vault, held.tenant.key, f"/sdk/approvals/{approval_id}?wait={wait}")
    assert answer.status_code == 422
    assert answer.json()["detail"]["field"] == "wait"


def test_a_body_larger_than_an_approval_holds_is_refused(
    vault: Vault, upstream: Upstream, hold_grant: Callable[..., Held]
) -> None:
    held = hold_grant(upstream)
    big = {"grant_id": held.grant_id, "method": "POST", "url": f"{upstream.origin}/v1/a"}
    big["body"] = {"blob": "x" * (300 * 1024)}
    answer = sdk_call(vault, held.tenant.key, "/sdk/proxy", big)
    assert answer.status_code == 413
    assert "approval" in answer.json()["detail"]["message"]
    with vault.admin() as admin:
        assert admin.get("/v1/approvals", params={"grant_id": held.grant_id}).json()["items"] == []
    assert upstream.requests == []


def test_management_bad_input_names_the_problem(
    vault: Vault, upstream: Upstream, hold_grant: Callable[..., Held]
) -> None:
    held = hold_grant(upstream)
    approval_id = _hold(vault, held, upstream)
    with vault.admin() as admin:
        listed = admin.get(
            "/v1/approvals", params={"status": "pending", "app_id": held.tenant.app_id}
        )
        assert [a["status"] for a in listed.json()["items"]] == ["pending"]
        assert admin.get("/v1/approvals", params={"status": "maybe"}).status_code == 422
        assert admin.get("/v1/approvals", params={"limit": 0}).status_code == 422
        missing = admin.get("/v1/approvals/00000000-0000-4000-8000-000000000000")
        assert (missing.status_code, missing.json()["detail"]["error"]) == (
            404,
            "approval_not_found",
        )
        no_approver = admin.post(f"/v1/approvals/{approval_id}/approve", json={"comment": "x"})
        assert (
            no_approver.status_code == 422 and no_approver.json()["detail"]["field"] == "approver"
        )
        extra = admin.post(
            f"/v1/approvals/{approval_id}/approve", json={"approver": "alice@example.com", "x": 1}
        )
        assert extra.status_code == 422
        long_comment = admin.post(
            f"/v1/approvals/{approval_id}/deny",
            json={"approver": "alice@example.com", "comment": "c" * 2001},
        )
        assert long_comment.status_code == 422
        bad_group = admin.put("/v1/approver-groups/Bad Name", json={"members": []})
        assert bad_group.status_code == 422
        app_key = httpx.get(
            f"{vault.base_url}/v1/approvals",
            headers={"Authorization": f"Bearer {held.tenant.key}"},
            trust_env=False,
        )
        assert app_key.status_code == 403
        still = admin.get(f"/v1/approvals/{approval_id}").json()
    assert still["status"] == "pending" and still["approvals_given"] == 0
    assert upstream.requests == []


async def test_a_held_poll_answers_with_the_end_not_the_steps_before_it(
    vault: Vault, upstream: Upstream, hold_grant: Callable[..., Held]
) -> None:
    held = hold_grant(upstream, approvals=2)
    approval_id = _hold(vault, held, upstream)
    async with alter_sdk.App(api_key=held.tenant.key) as app:
        first_gate = asyncio.create_task(app.get_approval_status(approval_id, wait=25))
        await asyncio.sleep(0)  # only lets the task start; the assertions do not depend on it
        assert decide(vault, approval_id, "alice@example.com").status_code == 200
        one = await first_gate
        assert one.status == "pending"  # a gate was decided while the other still waits
        assert [g.status for g in one.gates] == ["approved", "pending"]
        last = asyncio.create_task(app.get_approval_status(approval_id, wait=25))
        assert decide(vault, approval_id, "bob@example.com").status_code == 200
        done = await last
    # Held through "approved" and "executing": the poll answers once the call has run.
    assert (done.status, done.has_result) == ("executed", True)
    assert len(upstream.requests) == 1
